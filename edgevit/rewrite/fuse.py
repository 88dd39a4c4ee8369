"""Fold BatchNorm into the adjacent convolution or linear layer.

A separate BatchNormalization node after each conv costs a memory pass per layer in runtimes that
do not fuse it themselves (ncnn, Core ML's older paths, ORT at low optimisation levels) and
fragments int8 quantisation (a Q/DQ pair around a lone BN). Folding gives the same function.
"""
from __future__ import annotations

import torch
from torch import nn

from edgevit.rewrite._registry import register_rewrite


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    return scale, shift


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv followed by bn -> one conv (computed in float64, stored in the conv's dtype)."""
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
    )
    w = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
    b = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
    fused.weight.copy_(w.to(conv.weight.dtype))
    fused.bias.copy_((b * scale + shift).to(conv.weight.dtype))
    return fused


@torch.no_grad()
def fuse_bn_conv(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """bn followed by an unpadded (or 'zeros' padded 1x1) conv -> one conv."""
    if conv.padding_mode != "zeros" or (any(p != 0 for p in conv.padding) and conv.kernel_size != (1, 1)):
        raise ValueError("a BatchNorm before a padded conv cannot be folded exactly (padding sees the shift)")
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True,
    )
    w = conv.weight.double()
    g = conv.groups
    cin_g = conv.in_channels // g
    scale_g = scale.reshape(g, 1, cin_g, 1, 1)
    w_g = w.reshape(g, -1, cin_g, *conv.kernel_size)
    fused.weight.copy_((w_g * scale_g).reshape_as(w).to(conv.weight.dtype))
    extra = (w_g * shift.reshape(g, 1, cin_g, 1, 1)).sum(dim=(2, 3, 4)).reshape(-1)
    b = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    fused.bias.copy_((b + extra).to(conv.weight.dtype))
    return fused


@torch.no_grad()
def fuse_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """linear followed by bn over its output features -> one linear."""
    scale, shift = _bn_scale_shift(bn)
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True)
    fused.weight.copy_((linear.weight.double() * scale[:, None]).to(linear.weight.dtype))
    b = linear.bias.double() if linear.bias is not None else torch.zeros_like(shift)
    fused.bias.copy_((b * scale + shift).to(linear.weight.dtype))
    return fused


@torch.no_grad()
def bn_to_affine(bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A BatchNorm with no conv beside it -> a depthwise 1x1 conv (one static affine op)."""
    scale, shift = _bn_scale_shift(bn)
    c = bn.num_features
    conv = nn.Conv2d(c, c, 1, groups=c, bias=True)
    conv.weight.copy_(scale.reshape(c, 1, 1, 1).float())
    conv.bias.copy_(shift.float())
    return conv


@register_rewrite(nn.Sequential)
def fuse_sequential(seq: nn.Module) -> nn.Module:
    """Inside an nn.Sequential, fold every Conv2d->BatchNorm2d and Linear->BatchNorm1d pair."""
    assert isinstance(seq, nn.Sequential)
    mods = list(seq)
    out: list[nn.Module] = []
    i = 0
    changed = False
    while i < len(mods):
        a = mods[i]
        b = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
            out.append(fuse_conv_bn(a, b))
            i += 2
            changed = True
        elif isinstance(a, nn.Linear) and isinstance(b, nn.BatchNorm1d):
            out.append(fuse_linear_bn(a, b))
            i += 2
            changed = True
        else:
            out.append(a)
            i += 1
    if not changed:
        return seq
    return nn.Sequential(*out)
