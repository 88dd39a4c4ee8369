"""CAS-ViT deploy form: BatchNorm folded away, one classifier head, a static q/k/v split.

What the naive export of the train form gets wrong, and what this removes:
- `qkv(x).chunk(3)` under the TorchScript exporter with a dynamic batch becomes Shape -> Gather
  (constant index) -> Div -> 3x Slice per block, i.e. shape arithmetic at run time. The deploy form
  splits the qkv conv into three static 1x1 convs (q, k, v): no Split/Slice/Gather at all.
- 21 of CAS-ViT-XS's BatchNorms sit *before* a conv (norm1 -> qkv, norm2 -> mlp.fc1, final norm ->
  heads); neither exporter folds those, so each costs a full memory pass, and in ONNX Runtime a
  standalone BatchNormalization breaks the blocked (NCHWc) conv layout with reorders around it. Every
  BatchNorm is folded exactly into the adjacent conv/linear here (1x1 convs have no padding, so a
  preceding BN folds exactly).
- The two heads (`head`, `dist_head`, averaged in eval) become one linear with averaged weights; the
  final BatchNorm and the global mean commute, so it folds into that linear too.
Drop-path and dropout are removed by `edgevit.rewrite.dropout`. The deploy form computes the same function.
"""
from __future__ import annotations

import torch
from torch import nn

from edgevit.models.casvit import (
    AdditiveBlock,
    AdditiveTokenMixer,
    CASViT,
    Downsample,
    LocalIntegration,
    SpatialGate,
    Stem,
)
from edgevit.rewrite._registry import register_rewrite
from edgevit.rewrite.fuse import _bn_scale_shift, fuse_bn_conv, fuse_conv_bn


class StaticTokenMixer(nn.Module):
    """Deploy form of `AdditiveTokenMixer`: q, k, v from three static 1x1 convs instead of a chunked one."""

    def __init__(self, q: nn.Conv2d, k: nn.Conv2d, v: nn.Conv2d, q_spatial: nn.Module, q_channel: nn.Module,
                 k_spatial: nn.Module, k_channel: nn.Module, dwconv: nn.Conv2d, proj: nn.Conv2d) -> None:
        super().__init__()
        self.q, self.k, self.v = q, k, v
        self.q_spatial, self.q_channel = q_spatial, q_channel
        self.k_spatial, self.k_channel = k_spatial, k_channel
        self.dwconv, self.proj = dwconv, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q_channel(self.q_spatial(self.q(x)))
        k = self.k_channel(self.k_spatial(self.k(x)))
        return self.proj(self.dwconv(q + k) * self.v(x))

    @torch.no_grad()
    def fold_input_norm(self, bn: nn.BatchNorm2d) -> None:
        """Fold a BatchNorm applied to this mixer's input into the q/k/v convs."""
        self.q, self.k, self.v = (fuse_bn_conv(bn, c) for c in (self.q, self.k, self.v))


@torch.no_grad()
def _split_conv(conv: nn.Conv2d, parts: int) -> list[nn.Conv2d]:
    """A 1x1 conv with `parts * C` outputs -> `parts` convs with C outputs each (same weights)."""
    out = conv.out_channels // parts
    convs = []
    for i in range(parts):
        c = nn.Conv2d(conv.in_channels, out, 1, bias=conv.bias is not None)
        c.weight.copy_(conv.weight[i * out:(i + 1) * out])
        if conv.bias is not None:
            c.bias.copy_(conv.bias[i * out:(i + 1) * out])
        convs.append(c)
    return convs


@register_rewrite(Stem)
def _fold_stem(stem: nn.Module) -> nn.Module:
    assert isinstance(stem, Stem)
    stem.conv1, stem.norm1 = fuse_conv_bn(stem.conv1, stem.norm1), nn.Identity()
    stem.conv2, stem.norm2 = fuse_conv_bn(stem.conv2, stem.norm2), nn.Identity()
    return stem


@register_rewrite(Downsample)
def _fold_downsample(down: nn.Module) -> nn.Module:
    assert isinstance(down, Downsample)
    down.conv, down.norm = fuse_conv_bn(down.conv, down.norm), nn.Identity()
    return down


@register_rewrite(LocalIntegration)
def _fold_local(local: nn.Module) -> nn.Module:
    assert isinstance(local, LocalIntegration)
    local.conv_in, local.norm = fuse_conv_bn(local.conv_in, local.norm), nn.Identity()
    return local


@register_rewrite(SpatialGate)
def _fold_spatial_gate(gate: nn.Module) -> nn.Module:
    assert isinstance(gate, SpatialGate)
    gate.dwconv, gate.norm = fuse_conv_bn(gate.dwconv, gate.norm), nn.Identity()
    return gate


@register_rewrite(AdditiveTokenMixer)
def _static_mixer(mixer: nn.Module) -> nn.Module:
    assert isinstance(mixer, AdditiveTokenMixer)
    q, k, v = _split_conv(mixer.qkv, 3)
    return StaticTokenMixer(q, k, v, mixer.q_spatial, mixer.q_channel, mixer.k_spatial, mixer.k_channel,
                            mixer.dwconv, mixer.proj)


@register_rewrite(AdditiveBlock)
def _fold_block_norms(block: nn.Module) -> nn.Module:
    """norm1 -> the mixer's q/k/v convs, norm2 -> mlp.fc1 (both 1x1, so the fold is exact)."""
    assert isinstance(block, AdditiveBlock)
    if isinstance(block.attn, StaticTokenMixer):
        block.attn.fold_input_norm(block.norm1)
    else:  # pragma: no cover  (the mixer rewrite always runs first, children before parents)
        block.attn.qkv = fuse_bn_conv(block.norm1, block.attn.qkv)
    block.norm1 = nn.Identity()
    block.mlp.fc1, block.norm2 = fuse_bn_conv(block.norm2, block.mlp.fc1), nn.Identity()
    return block


@register_rewrite(CASViT)
@torch.no_grad()
def _merge_heads(model: nn.Module) -> nn.Module:
    """Average `head` and `dist_head` into one linear and fold the final BatchNorm into it.

    head(mean(bn(x))) = W (s * mean(x) + t) + b, so W' = W * s and b' = b + W t (computed in float64).
    """
    assert isinstance(model, CASViT)
    heads = [h for h in (model.head, model.dist_head) if h is not None]
    if not all(isinstance(h, nn.Linear) for h in heads):  # num_classes=0: features only, keep the norm
        return model
    weight = sum(h.weight.double() for h in heads) / len(heads)  # type: ignore[union-attr]
    bias = sum(h.bias.double() for h in heads) / len(heads)  # type: ignore[union-attr]
    scale, shift = _bn_scale_shift(model.norm)
    merged = nn.Linear(model.num_features, model.num_classes)
    merged.weight.copy_((weight * scale[None, :]).float())
    merged.bias.copy_((bias + weight @ shift).float())
    model.head, model.dist_head, model.norm = merged, None, nn.Identity()
    return model


__all__ = ["StaticTokenMixer"]
