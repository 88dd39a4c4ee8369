"""Deploy form of STViT's super token attention (STA): static, rank-4, im2col/col2im-free.

Export failures of the train form this removes:
- `F.fold` (col2im) exports as Col2Im, which needs opset 18 and is missing or patchy across runtimes
  (onnx/onnx#4106, #5415); Core ML has no col2im (timm PR #1708). The official code's substitute, an
  identity-kernel ConvTranspose over channels reshaped into the batch, breaks ncnn/pnnx (batch axis
  must stay the batch) and costs a ConvTranspose per fold. Here unfold is 9 shifted slices of a padded
  tensor and fold is the sum of 9 shifted slices of a padded tensor (Pad, Slice, Add).
- `F.adaptive_avg_pool2d(x, (H // h, W // w))` with shape-derived sizes fails dynamic-shape export
  (pytorch/pytorch#42653); here it is `avg_pool2d` with kernel = stride = super-token size, and the
  padding is computed once for the recorded export resolution.
- The `no_grad` affinity iterations are unrolled for the fixed `n_iter` (no grad-mode nodes, no Loop).
- The rank-6 window partition `reshape(B, C, hh, h, ww, w).permute(...)` (rejected by pnnx/ncnn, which
  handle at most rank 4 with batch) is done with rank-4 reshapes and transposes.
- The refine attention gets q/k/v by splitting the projection first (no rank-5 reshape) and takes its
  softmax over the last axis; the attention scale is folded into the q weights.
- The custom autograd Swish ("Couldn't export Python operator SwishImplementation", pytorch#56458)
  becomes nn.SiLU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgevit.models.stvit import Attention, MemoryEfficientSwish, SuperTokenAttention
from edgevit.rewrite._registry import register_rewrite

# Offsets (row, col) of the 3x3 neighbourhood in im2col order: k = 3 * row + col.
_TAPS = [(i, j) for i in range(3) for j in range(3)]


class DeployAttention(nn.Module):
    """Multi-head self-attention over an NCHW map with q/k/v split before any reshape (rank <= 4),
    the scale folded into q and the softmax over the last axis."""

    def __init__(self, src: Attention) -> None:
        super().__init__()
        dim = src.proj.in_channels
        heads = src.num_heads
        hd = dim // heads
        self.num_heads = heads
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=True)
        self.proj = src.proj
        with torch.no_grad():
            # official channel order per head: [q(hd), k(hd), v(hd)] -> ours: [q(all heads) | k | v]
            w = src.qkv.weight.reshape(heads, 3, hd, dim).transpose(0, 1)
            b = src.qkv.bias if src.qkv.bias is not None else torch.zeros(3 * dim)
            b = b.reshape(heads, 3, hd).transpose(0, 1)
            scale = torch.tensor([src.scale, 1.0, 1.0]).reshape(3, 1, 1)
            self.qkv.weight.copy_((w * scale.unsqueeze(-1)).reshape(3 * dim, dim, 1, 1))
            self.qkv.bias.copy_((b * scale).reshape(3 * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, C, H, W = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).chunk(3, dim=1)
        q = q.reshape(-1, heads, C // heads, H * W)
        k = k.reshape(-1, heads, C // heads, H * W)
        v = v.reshape(-1, heads, C // heads, H * W)
        attn = (q.transpose(-1, -2) @ k).softmax(dim=-1)  # (B, heads, N queries, N keys)
        x = (v @ attn.transpose(-1, -2)).reshape(-1, C, H, W)
        return self.proj(x)


class DeploySuperTokenAttention(nn.Module):
    """STA with static shapes for one input resolution (`resolution`, recorded) and export-friendly ops.

    Layouts: pixels as (B, N, C, P) with N = hh*ww super-token cells and P = h*w pixels per cell (taken
    column-major inside the cell, which only has to match between partition and its inverse)."""

    def __init__(self, src: SuperTokenAttention) -> None:
        super().__init__()
        self.refine = DeployAttention(src.refine) if isinstance(src.refine, Attention) else src.refine
        self.dim = src.dim
        self.n_iter = src.n_iter
        self.scale = src.scale
        self.stoken_size = src.stoken_size
        self.resolution = src.feature_size  # (H0, W0) of the input at the model's img_size
        h, w = self.stoken_size
        H0, W0 = self.resolution
        self.pad_b, self.pad_r = (h - H0 % h) % h, (w - W0 % w) % w
        self.H, self.W = H0 + self.pad_b, W0 + self.pad_r
        self.hh, self.ww = self.H // h, self.W // w

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, stoken_size={self.stoken_size}, n_iter={self.n_iter}"

    def _partition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, C, P) with rank-4 reshapes and transposes only."""
        C, h, w = x.shape[1], *self.stoken_size
        x = x.reshape(-1, C * self.hh, h, self.W).transpose(2, 3)  # (B, C*hh, W, h)
        return x.reshape(-1, C, self.hh * self.ww, w * h).transpose(1, 2)

    def _unpartition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C, P) -> (B, C, H, W), the inverse of `_partition`."""
        C, h = x.shape[2], self.stoken_size[0]
        x = x.transpose(1, 2).reshape(-1, C * self.hh, self.W, h).transpose(2, 3)  # (B, C*hh, h, W)
        return x.reshape(-1, C, self.H, self.W)

    def _unfold(self, s: torch.Tensor) -> torch.Tensor:
        """(B, C, hh, ww) -> (B, N, C, 9): zero-padded 3x3 neighbourhoods as 9 shifted slices."""
        C, hh, ww = s.shape[1], self.hh, self.ww
        sp = F.pad(s, (1, 1, 1, 1))
        cols = torch.cat([sp[:, :, i : i + hh, j : j + ww] for i, j in _TAPS], dim=1)  # (B, 9*C, hh, ww)
        return cols.reshape(-1, 9, C, hh * ww).permute(0, 3, 2, 1)

    def _fold(self, t: torch.Tensor) -> torch.Tensor:
        """(B, N, C, 9) -> (B, C, hh, ww): adjoint of `_unfold`, the sum of 9 shifted slices."""
        C, hh, ww = t.shape[2], self.hh, self.ww
        tp = F.pad(t.permute(0, 3, 2, 1).reshape(-1, 9 * C, hh, ww), (1, 1, 1, 1))
        out = None
        for k, (i, j) in enumerate(_TAPS):
            part = tp[:, k * C : (k + 1) * C, 2 - i : 2 - i + hh, 2 - j : 2 - j + ww]
            out = part if out is None else out + part
        assert out is not None
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            if tuple(x.shape[-2:]) != self.resolution:
                raise ValueError(f"deploy form built for {self.resolution}, got input {tuple(x.shape[-2:])}; "
                                 "create the model with the export img_size before deploy()")
        if self.pad_b or self.pad_r:
            x = F.pad(x, (0, self.pad_r, 0, self.pad_b))
        stokens = F.avg_pool2d(x, self.stoken_size, self.stoken_size)  # (B, C, hh, ww)
        pixels = self._partition(x)  # (B, N, C, P)
        pixels_t = pixels.transpose(2, 3)  # (B, N, P, C)
        affinity = affinity_sum = torch.empty(0)
        for i in range(self.n_iter):  # unrolled: n_iter is fixed
            affinity = (pixels_t @ self._unfold(stokens * self.scale)).softmax(-1)  # (B, N, P, 9)
            affinity_sum = self._fold(affinity.sum(2, keepdim=True)) + 1e-12  # (B, 1, hh, ww)
            if i < self.n_iter - 1:
                stokens = self._fold(pixels @ affinity) / affinity_sum
        stokens = self.refine(self._fold(pixels @ affinity) / affinity_sum)
        out = self._unpartition(self._unfold(stokens) @ affinity.transpose(2, 3))
        if self.pad_b or self.pad_r:
            out = out[:, :, : self.resolution[0], : self.resolution[1]]
        return out


@register_rewrite(SuperTokenAttention)
def deploy_super_token_attention(module: nn.Module) -> nn.Module:
    """STA -> its static deploy form; with 1x1 super tokens it is just the refine attention."""
    assert isinstance(module, SuperTokenAttention)
    if not module.samples_super_tokens:
        return DeployAttention(module.refine)
    return DeploySuperTokenAttention(module)


@register_rewrite(MemoryEfficientSwish)
def swish_to_silu(module: nn.Module) -> nn.Module:
    """Custom autograd Swish -> nn.SiLU (exports as Sigmoid * x, or one Swish/SiLU op)."""
    return nn.SiLU()
