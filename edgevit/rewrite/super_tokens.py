"""Deploy form of STViT's super token attention (STA): static, rank <= 4, im2col/col2im-free.

Export failures of the train form this removes:
- `F.fold` (col2im) exports as Col2Im, which needs opset 18 and is missing or patchy across runtimes
  (onnx/onnx#4106, #5415); Core ML has no col2im (timm PR #1708); `F.unfold` (im2col) exports as Gathers
  on constant index tensors. The official code's substitute, identity-kernel conv / ConvTranspose over
  channels reshaped into the batch, breaks ncnn/pnnx (the batch axis must stay the batch). Here the 3x3
  neighbourhood unfold over the small super-token grid is a product with a constant 0/1 neighbour matrix
  (N x 9N, zero padding built in) and fold is the product with the same matrix from the other side;
  above `MAX_CELLS_FOR_MATRIX` cells, 9 shifted slices of a padded tensor (fold: their adjoint sum).
- `F.adaptive_avg_pool2d(x, (H // h, W // w))` with shape-derived sizes fails the TorchScript exporter
  ("output_size is not constant") and dynamic-shape export (pytorch/pytorch#42653); here it is
  `avg_pool2d` with kernel = stride = super-token size, padding computed once for the recorded
  resolution (`DeploySuperTokenAttention.resolution`).
- The `no_grad` affinity iterations are unrolled for the fixed `n_iter` (no grad-mode nodes, no Loop).
- The rank-6 window partition `reshape(B, C, hh, h, ww, w).permute(...)` (pnnx/ncnn handle at most rank 4
  with batch) is done with rank-4 reshapes and transposes; q/k/v are split on a rank-4 tensor with
  static split sizes; all sizes are Python ints, so traced graphs carry no Shape/Gather chains.
- The custom autograd Swish ("Couldn't export Python operator SwishImplementation", pytorch#56458)
  becomes nn.SiLU.
BatchNorm/layer-scale folding and the residual depthwise conv's identity live in the blocks' `fuse()`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgevit.models.stvit import Attention, MemoryEfficientSwish, SuperTokenAttention
from edgevit.rewrite._registry import register_rewrite

# Offsets (row, col) of the 3x3 neighbourhood in im2col order: k = 3 * row + col.
_TAPS = [(i, j) for i in range(3) for j in range(3)]
# Up to this many super-token cells (12x12: 384x384 inputs) unfold/fold are products with a constant 0/1
# selection matrix (N x 9N, 86 KB at 224); above it, the matrices grow as 9 N^2 and shifted slices are used.
MAX_CELLS_FOR_MATRIX = 144


def neighbour_matrix(hh: int, ww: int) -> torch.Tensor:
    """(N, 9N) 0/1 matrix M with M[m, 9n + k] = 1 iff cell m is neighbour k of cell n (N = hh*ww).

    `s @ M` is the zero-padded 3x3 unfold of s (B, C, N); `M @ t` (t: (B, 9N, C)) is its adjoint, the fold."""
    n = hh * ww
    m = torch.zeros(n, 9 * n)
    for a in range(hh):
        for b in range(ww):
            for k, (i, j) in enumerate(_TAPS):
                y, x = a + i - 1, b + j - 1
                if 0 <= y < hh and 0 <= x < ww:
                    m[y * ww + x, 9 * (a * ww + b) + k] = 1.0
    return m


class DeployAttention(nn.Module):
    """Multi-head self-attention over (B, C, *size) with static sizes: q/k/v split on a rank-4 tensor,
    the scale folded into the q weights; 1x1 convs in 1-D (super tokens) or 2-D (pixels)."""

    def __init__(self, src: Attention, size: tuple[int, ...]) -> None:
        super().__init__()
        dim = src.proj.in_channels
        self.num_heads = src.num_heads
        self.dim = dim
        self.size = tuple(size)
        conv: type[nn.Conv1d] | type[nn.Conv2d] = nn.Conv1d if len(size) == 1 else nn.Conv2d
        self.qkv = conv(dim, 3 * dim, 1)
        self.proj = conv(dim, dim, 1)
        hd = dim // self.num_heads
        with torch.no_grad():
            # official channel order per head: [q(hd), k(hd), v(hd)]; scale the q rows
            scale = torch.ones(self.num_heads, 3, hd)
            scale[:, 0] = src.scale
            scale = scale.reshape(-1)
            bias = src.qkv.bias if src.qkv.bias is not None else torch.zeros(3 * dim)
            self.qkv.weight.copy_((src.qkv.weight.reshape(3 * dim, dim) * scale[:, None]).reshape_as(self.qkv.weight))
            self.qkv.bias.copy_(bias * scale)
            self.proj.weight.copy_(src.proj.weight.reshape_as(self.proj.weight))
            self.proj.bias.copy_(src.proj.bias)

    def extra_repr(self) -> str:
        return f"size={self.size}, heads={self.num_heads}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = 1
        for s in self.size:
            n *= s
        hd = self.dim // self.num_heads
        # explicit split sizes: chunk() makes the TorchScript exporter compute them with Shape/Gather
        q, k, v = self.qkv(x).reshape(-1, self.num_heads, 3 * hd, n).split([hd, hd, hd], dim=2)  # (B, heads, hd, N)
        attn = (k.transpose(-1, -2) @ q).softmax(dim=-2)  # (B, heads, N keys, N queries)
        return self.proj((v @ attn).reshape(-1, self.dim, *self.size))


class DeploySuperTokenAttention(nn.Module):
    """STA with static shapes for one input resolution (`resolution`, recorded) and export-friendly ops.

    Layouts are channels-last, so every transpose moves large contiguous blocks (ONNX Runtime spends
    ~20 ns per element on transposes whose inner block is a few floats, 2 ms per call on stvit_small):
    pixels X (B, N, P, C) with N = hh*ww super-token cells and P = h*w pixels per cell (row-major);
    super tokens (B, N, C); affinities (B, N, 9, P)."""

    def __init__(self, src: SuperTokenAttention) -> None:
        super().__init__()
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
        self.cells = self.hh * self.ww
        self.refine = DeployAttention(src.refine, (self.cells,))
        self.use_matrix = self.cells <= MAX_CELLS_FOR_MATRIX
        if self.use_matrix:
            m = neighbour_matrix(self.hh, self.ww)
            self.register_buffer("neighbours", m, persistent=False)  # fold: (N, 9N)
            self.register_buffer("gather_scaled", (m * self.scale).t().contiguous(), persistent=False)  # (9N, N)
            self.register_buffer("gather", m.t().contiguous(), persistent=False)  # unfold: (9N, N)

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, stoken_size={self.stoken_size}, n_iter={self.n_iter}, "
                f"unfold={'matrix' if self.use_matrix else 'slices'}")

    def _partition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, P, C) with rank-4 reshapes and block-moving transposes only."""
        C, (h, w) = self.dim, self.stoken_size
        x = x.reshape(-1, C, self.H * self.W).transpose(1, 2)  # (B, H*W, C): channels last
        x = x.reshape(-1, self.H, self.ww, w * C).transpose(1, 2)  # (B, ww, H, w*C)
        x = x.reshape(-1, self.ww, self.hh, h * w * C).transpose(1, 2)  # (B, hh, ww, h*w*C)
        return x.reshape(-1, self.cells, h * w, C)

    def _unpartition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, P, C) -> (B, C, H, W), the inverse of `_partition`."""
        C, (h, w) = self.dim, self.stoken_size
        x = x.reshape(-1, self.hh, self.ww, h * w * C).transpose(1, 2)  # (B, ww, hh, h*w*C)
        x = x.reshape(-1, self.ww, self.H, w * C).transpose(1, 2)  # (B, H, ww, w*C)
        return x.reshape(-1, self.H * self.W, C).transpose(1, 2).reshape(-1, C, self.H, self.W)

    def _unfold(self, s: torch.Tensor, scaled: bool = False) -> torch.Tensor:
        """(B, N, C) -> (B, N, 9, C): each cell's zero-padded 3x3 neighbourhood (optionally * scale)."""
        C, hh, ww = self.dim, self.hh, self.ww  # static sizes: no Shape/Gather in traced graphs
        if self.use_matrix:
            return ((self.gather_scaled if scaled else self.gather) @ s).reshape(-1, self.cells, 9, C)
        if scaled:
            s = s * self.scale
        sp = F.pad(s.transpose(1, 2).reshape(-1, C, hh, ww), (1, 1, 1, 1))
        cols = torch.cat([sp[:, :, i : i + hh, j : j + ww] for i, j in _TAPS], dim=1)  # (B, 9*C, hh, ww)
        return cols.reshape(-1, 9, C, self.cells).permute(0, 3, 1, 2)

    def _fold(self, t: torch.Tensor, C: int) -> torch.Tensor:
        """(B, N, 9, C) -> (B, N, C): the adjoint of `_unfold`, summing each cell's contributions to its
        neighbours onto them."""
        hh, ww = self.hh, self.ww
        if self.use_matrix:
            return self.neighbours @ t.reshape(-1, 9 * self.cells, C)
        tp = F.pad(t.permute(0, 2, 3, 1).reshape(-1, 9 * C, hh, ww), (1, 1, 1, 1))
        out = tp[:, 0:C, 2 : 2 + hh, 2 : 2 + ww]
        for k, (i, j) in enumerate(_TAPS[1:], start=1):
            out = out + tp[:, k * C : (k + 1) * C, 2 - i : 2 - i + hh, 2 - j : 2 - j + ww]
        return out.reshape(-1, C, self.cells).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            if tuple(x.shape[-2:]) != self.resolution:
                raise ValueError(f"deploy form built for {self.resolution}, got input {tuple(x.shape[-2:])}; "
                                 "create the model with the export img_size before deploy()")
        if self.pad_b or self.pad_r:
            x = F.pad(x, (0, self.pad_r, 0, self.pad_b))
        C = self.dim
        stokens = F.avg_pool2d(x, self.stoken_size, self.stoken_size).reshape(-1, C, self.cells).transpose(1, 2)
        pixels = self._partition(x)  # (B, N, P, C)
        for i in range(self.n_iter):  # unrolled: n_iter is fixed
            neighbours = self._unfold(stokens, scaled=True)  # (B, N, 9, C)
            affinity = (neighbours @ pixels.transpose(2, 3)).softmax(dim=2)  # (B, N, 9, P)
            affinity_sum = self._fold(affinity.sum(3, keepdim=True), 1) + 1e-12  # (B, N, 1)
            # sampled super tokens: affinity-weighted pixel sums over each token's 3x3 neighbourhood
            stokens = self._fold(affinity @ pixels, C) / affinity_sum  # (B, N, C)
        stokens = self.refine(stokens.transpose(1, 2)).transpose(1, 2)  # refine works on (B, C, N)
        out = affinity.transpose(2, 3) @ self._unfold(stokens)  # (B, N, P, C)
        out = self._unpartition(out)
        if self.pad_b or self.pad_r:
            out = out[:, :, : self.resolution[0], : self.resolution[1]]
        return out


@register_rewrite(SuperTokenAttention)
def deploy_super_token_attention(module: nn.Module) -> nn.Module:
    """STA -> its static deploy form; with 1x1 super tokens it is just the refine attention."""
    assert isinstance(module, SuperTokenAttention)
    if not module.samples_super_tokens:
        return DeployAttention(module.refine, module.feature_size)
    return DeploySuperTokenAttention(module)


@register_rewrite(MemoryEfficientSwish)
def swish_to_silu(module: nn.Module) -> nn.Module:
    """Custom autograd Swish -> nn.SiLU (exports as Sigmoid * x, or one Swish/SiLU op)."""
    return nn.SiLU()
