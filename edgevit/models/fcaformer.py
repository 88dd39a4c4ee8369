"""FcaFormer and CabViT-H: forward cross attention in (hybrid) vision transformers.

Paper: Haokui Zhang, Wenze Hu, Xiaoyu Wang, "FcaFormer: Forward Cross Attention in Hybrid Vision
Transformer", ICCV 2023, arXiv:2211.07198 (first released as "CabViT: Cross Attention among Blocks
for Vision Transformer"). Official code: https://github.com/hkzhang-git/FcaFormer

Each transformer block also attends to *cross tokens*: tokens that earlier blocks of the same stage
merged spatially (token merging: a depthwise 7x7 stride-4 conv) and that later blocks re-scale with
learned per-token factors (LSFs), normalise and project with their own key/value weights.

- `fcaformer_l1..l4`: hybrid model, two ConvNeXt stages then two forward-cross-attention stages with
  LeViT-style relative position biases; a block sees the cross tokens of the last 12 blocks.
- `cabvit_h_l1..l3`: the same model with an unbounded cross-token window (same logits at depth <= 12).
- `fcaformer_l0`: the plain FcaFormer of the paper (DeiT-Tiny layout plus cross tokens). There is no
  official code or checkpoint; it is built from the paper's description.

Train form here; `edgevit.deploy` folds BatchNorm and layer scales (`fuse()` methods below) and
turns every `CrossAttention` into one static attention (`edgevit/rewrite/cross_tokens.py`).
"""
from __future__ import annotations

import itertools
import math
import re
from functools import cache, partial

import torch
from torch import nn

from edgevit.models._registry import register_model
from edgevit.models.layers import DropPath, to_2tuple, trunc_normal_

PAPER = "Zhang et al., FcaFormer: Forward Cross Attention in Hybrid Vision Transformer, ICCV 2023"
PAPER_CABVIT = "Zhang et al., CabViT: Cross Attention among Blocks for Vision Transformer, arXiv:2211.07198"


# --------------------------------------------------------------------------------------------- blocks
class ConvNorm(nn.Module):
    """Conv2d without bias followed by BatchNorm2d; `fuse()` folds them into one conv."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def fuse(self) -> nn.Conv2d:
        from edgevit.rewrite.fuse import fuse_conv_bn

        return fuse_conv_bn(self.conv, self.bn)


class PatchMerging(nn.Module):
    """Downsampling between stages: 1x1 conv, depthwise 3x3 stride-2 conv, 1x1 conv (NCHW in and out)."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(dim, out_dim, 1)
        self.conv2 = ConvNorm(out_dim, out_dim, 3, 2, 1, groups=out_dim)
        self.conv3 = ConvNorm(out_dim, out_dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class Mlp(nn.Module):
    """Feed-forward network; `prenorm` adds the extra LayerNorm the hybrid FcaFormer blocks carry."""

    def __init__(self, dim: int, hidden: int, prenorm: bool = False, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=norm_eps) if prenorm else nn.Identity()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


@torch.no_grad()
def fold_layer_scale(linear: nn.Linear, gamma: torch.Tensor) -> None:
    """`gamma * linear(x)` -> `linear(x)` with gamma folded into the weights (computed in float64)."""
    g = gamma.detach().double()
    linear.weight.copy_((linear.weight.double() * g[:, None]).to(linear.weight.dtype))
    if linear.bias is not None:
        linear.bias.copy_((linear.bias.double() * g).to(linear.bias.dtype))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7, LayerNorm, MLP (as linears on NHWC), layer scale, residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma: nn.Parameter | None = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))

    def fuse(self) -> nn.Module:
        """Fold the layer scale into pwconv2 (one Mul less per block)."""
        if self.gamma is not None:
            fold_layer_scale(self.pwconv2, self.gamma)
            self.gamma = None
        return self


@cache
def _relative_position_index(grid: tuple[int, int]) -> torch.Tensor:
    points = list(itertools.product(range(grid[0]), range(grid[1])))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    return torch.tensor(idxs, dtype=torch.long).view(len(points), len(points))


def relative_position_index(grid: tuple[int, int]) -> torch.Tensor:
    """(N, N) index into a table of |dy|, |dx| offsets, numbered in first-seen order (LeViT layout)."""
    return _relative_position_index(tuple(grid)).clone()


class CrossAttention(nn.Module):
    """Multi-head attention of a block's (normalised) tokens over themselves and over cross tokens.

    Cross tokens (merged by earlier blocks) are scaled per token (`cross_scale`, the paper's LSFs),
    normalised (`cross_norm`) and projected with this block's key/value weights; their logits get a
    learned per-head bias (`cross_bias`). Own tokens optionally get relative position biases.
    """

    def __init__(self, dim: int, num_heads: int, num_cross: int = 0, grid: tuple[int, int] | None = None,
                 norm_eps: float = 1e-5, num_tokens: int | None = None) -> None:
        super().__init__()
        self.num_tokens = num_tokens  # own tokens per image, where known (deploy needs it for the bias)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.num_cross = num_cross
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.grid = grid
        if grid is not None:
            idx = relative_position_index(grid)
            self.attention_biases = nn.Parameter(torch.zeros(num_heads, int(idx.max()) + 1))
            self.register_buffer("attention_bias_idxs", idx, persistent=False)
        else:
            self.attention_biases = None
        if num_cross > 0:
            self.cross_norm = nn.LayerNorm(dim, eps=norm_eps)
            self.cross_scale = nn.Parameter(torch.ones(1, num_cross, 1))
            self.cross_bias = nn.Parameter(torch.zeros(1, num_heads, 1, num_cross))

    def _split_heads(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = t.shape[1]
        qkv = self.qkv(t).reshape(-1, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        return q, k, v

    def forward(self, x: torch.Tensor, cross: torch.Tensor | None = None) -> torch.Tensor:
        n, c = x.shape[1], x.shape[2]
        q, k, v = self._split_heads(x)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        if self.attention_biases is not None:
            attn = attn + self.attention_biases[:, self.attention_bias_idxs]
        if cross is not None:
            s = self.cross_norm(cross * self.cross_scale)
            _, k_s, v_s = self._split_heads(s)
            attn = torch.cat([attn, q @ k_s.transpose(-2, -1) + self.cross_bias], dim=-1)
            v = torch.cat([v, v_s], dim=2)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, n, c)
        return self.proj(out)


class FcaBlock(nn.Module):
    """Forward-cross-attention block: attention (own + cross tokens), token merging into new cross
    tokens, a depthwise 3x3 conv ("token enhancement"), then the MLP. Returns (tokens, merged or None).

    `num_prefix_tokens` (the plain model's class token) skip the convolutions.
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], num_cross: int, merge_tokens: bool,
                 rel_pos: bool = True, num_prefix_tokens: int = 0, layer_scale_init: float | None = 1e-6,
                 norm_eps: float = 1e-5, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.grid = grid
        self.dim = dim
        self.num_prefix_tokens = num_prefix_tokens
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrossAttention(dim, num_heads, num_cross, grid if rel_pos else None, norm_eps,
                                   num_tokens=grid[0] * grid[1] + num_prefix_tokens)
        self.token_merge = nn.Conv2d(dim, dim, 7, 4, 3, groups=dim, bias=False) if merge_tokens else None
        self.local_conv = ConvNorm(dim, dim, 3, 1, 1, groups=dim)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), prenorm=True, norm_eps=norm_eps)
        ls = layer_scale_init is not None
        self.gamma_1 = nn.Parameter(torch.full((dim,), layer_scale_init)) if ls else None
        self.gamma_2 = nn.Parameter(torch.full((dim,), layer_scale_init)) if ls else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor,
                cross: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = self.attn(self.norm1(x), cross)
        x = x + self.drop_path(y if self.gamma_1 is None else self.gamma_1 * y)
        p, c = self.num_prefix_tokens, self.dim
        prefix, patches = (x[:, :p], x[:, p:]) if p else (None, x)
        img = patches.transpose(1, 2).reshape(-1, c, self.grid[0], self.grid[1])
        merged = self.token_merge(img).flatten(2).transpose(1, 2) if self.token_merge is not None else None
        x = self.local_conv(img).flatten(2).transpose(1, 2)
        if prefix is not None:
            x = torch.cat([prefix, x], dim=1)
        y = self.mlp(self.norm2(x))
        x = x + self.drop_path(y if self.gamma_2 is None else self.gamma_2 * y)
        return x, merged

    def fuse(self) -> nn.Module:
        """Fold both layer scales into the output projections (attn.proj, mlp.fc2)."""
        if self.gamma_1 is not None and self.gamma_2 is not None:
            fold_layer_scale(self.attn.proj, self.gamma_1)
            fold_layer_scale(self.mlp.fc2, self.gamma_2)
            self.gamma_1 = self.gamma_2 = None
        return self


# --------------------------------------------------------------------------------------------- stages
class ConvStage(nn.Module):
    """ConvNeXt blocks then (optionally) patch merging; NCHW in and out."""

    def __init__(self, dim: int, out_dim: int, depth: int, drop_path: list[float], downsample: bool,
                 layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(dim, dp, layer_scale_init) for dp in drop_path[:depth]])
        self.downsample = PatchMerging(dim, out_dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        return self.downsample(x) if self.downsample is not None else x


def merged_tokens(grid: tuple[int, int]) -> int:
    """Cross tokens one block merges: the 7x7 stride-4 pad-3 conv output size."""
    return math.ceil(grid[0] / 4) * math.ceil(grid[1] / 4)


class FcaStage(nn.Module):
    """Forward-cross-attention blocks at one resolution; tokens (B, N, C) in and out.

    Cross tokens accumulate along the token axis as one tensor; a block sees those of the last
    `window` blocks (None: all earlier blocks, CabViT-H). Counts are static Python ints.
    """

    def __init__(self, dim: int, out_dim: int, grid: tuple[int, int], depth: int, num_heads: int,
                 drop_path: list[float], downsample: bool, window: int | None = 12, rel_pos: bool = True,
                 num_prefix_tokens: int = 0, layer_scale_init: float | None = 1e-6, norm_eps: float = 1e-5,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.grid = grid
        self.dim = dim
        self.per_block = per_block = merged_tokens(grid)
        self.window_tokens = None if window is None else window * per_block
        self.blocks = nn.ModuleList([
            FcaBlock(dim, num_heads, grid, num_cross=(i if window is None else min(i, window)) * per_block,
                     merge_tokens=i < depth - 1, rel_pos=rel_pos, num_prefix_tokens=num_prefix_tokens,
                     layer_scale_init=layer_scale_init, norm_eps=norm_eps, mlp_ratio=mlp_ratio,
                     drop_path=drop_path[i])
            for i in range(depth)
        ])
        self.downsample = PatchMerging(dim, out_dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cross: torch.Tensor | None = None
        num_cross = 0  # tokens in `cross`, a static Python int
        for blk in self.blocks:
            x, merged = blk(x, cross)
            if merged is not None:
                cross = merged if cross is None else torch.cat([cross, merged], dim=1)
                num_cross += self.per_block
                if self.window_tokens is not None and num_cross > self.window_tokens:
                    cross, num_cross = cross[:, -self.window_tokens:], self.window_tokens
        if self.downsample is not None:
            img = x.transpose(1, 2).reshape(-1, self.dim, self.grid[0], self.grid[1])
            x = self.downsample(img).flatten(2).transpose(1, 2)
        return x


# --------------------------------------------------------------------------------------------- models
def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _drop_path_rates(depths: tuple[int, ...], rate: float) -> list[list[float]]:
    dpr = torch.linspace(0, rate, sum(depths)).tolist()
    out, i = [], 0
    for d in depths:
        out.append(dpr[i:i + d])
        i += d
    return out


class FcaFormer(nn.Module):
    """Hybrid FcaFormer / CabViT-H: stem, two ConvNeXt stages, two forward-cross-attention stages,
    mean pooling, LayerNorm, linear head. The attention stages' bias tables fix the input size."""

    def __init__(self, embed_dims: tuple[int, ...] = (64, 128, 192, 320),
                 depths: tuple[int, ...] = (2, 2, 6, 2), num_heads: tuple[int, ...] = (6, 10),
                 img_size: int = 224, in_chans: int = 3,
                 num_classes: int = 1000, drop_path_rate: float = 0.0, window: int | None = 12,
                 layer_scale_init: float = 1e-6, mlp_ratio: float = 4.0, init_weights: bool = True) -> None:
        super().__init__()
        h, w = to_2tuple(img_size)
        if h % 32 or w % 32:
            raise ValueError(f"img_size must be divisible by 32, got {img_size}")
        self.img_size = (h, w)
        self.num_classes = num_classes
        d = embed_dims
        self.stem = nn.Sequential(ConvNorm(in_chans, d[0] // 2, 3, 2, 1), nn.GELU(),
                                  ConvNorm(d[0] // 2, d[0], 3, 2, 1))
        dpr = _drop_path_rates(depths, drop_path_rate)
        fca = partial(FcaStage, window=window, layer_scale_init=layer_scale_init, mlp_ratio=mlp_ratio)
        self.stages = nn.ModuleList([
            ConvStage(d[0], d[1], depths[0], dpr[0], downsample=True, layer_scale_init=layer_scale_init),
            ConvStage(d[1], d[2], depths[1], dpr[1], downsample=True, layer_scale_init=layer_scale_init),
            fca(d[2], d[3], (h // 16, w // 16), depths[2], num_heads[0], dpr[2], downsample=True),
            fca(d[3], d[3], (h // 32, w // 32), depths[3], num_heads[1], dpr[3], downsample=False),
        ])
        self.norm_head = nn.LayerNorm(d[-1])
        self.head = nn.Linear(d[-1], num_classes) if num_classes > 0 else nn.Identity()
        if init_weights:  # False skips the costly truncated-normal init when a checkpoint overwrites it
            self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages[1](self.stages[0](x))
        x = x.flatten(2).transpose(1, 2)
        x = self.stages[3](self.stages[2](x))
        return x.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm_head(self.forward_features(x)))

    # official block attributes -> ours (inside `layer_N.blocks.M.`)
    _BLOCK_KEYS = (
        (r"\.(qkv|proj)\.", r".attn.\1."),
        (r"\.attention_biases$", ".attn.attention_biases"),
        (r"\.s_token_bias$", ".attn.cross_bias"),
        (r"\.s_scale_factors$", ".attn.cross_scale"),
        (r"\.s_norm\.", ".attn.cross_norm."),
        (r"\.dw_conv\.", ".token_merge."),
    )

    def checkpoint_filter(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map official FcaFormer / CabViT-H keys (`patch_embed.seq`, `layer_N`, `s_*`, `.c.`) to ours."""
        own = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            if key not in own:
                key = re.sub(r"^patch_embed\.seq\.", "stem.", key)
                key = re.sub(r"^layer_(\d+)\.", r"stages.\1.", key)
                key = key.replace(".c.", ".conv.")
                block = re.match(r"^(stages\.[23]\.blocks\.\d+)(\..*)$", key)
                if block is not None:
                    prefix, rest = block.groups()
                    for pattern, repl in self._BLOCK_KEYS:
                        rest = re.sub(pattern, repl, rest, count=1)
                    key = prefix + rest
            out[key] = value
        return out


class PlainFcaFormer(nn.Module):
    """Plain FcaFormer (the paper's L0): DeiT layout (16x16 patches, class token, position
    embedding) whose blocks are forward-cross-attention blocks without relative position bias."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, window: int | None = 12, init_weights: bool = True) -> None:
        super().__init__()
        h, w = to_2tuple(img_size)
        if h % patch_size or w % patch_size:
            raise ValueError(f"img_size must be divisible by {patch_size}, got {img_size}")
        grid = (h // patch_size, w // patch_size)
        self.img_size = (h, w)
        self.num_classes = num_classes
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1] + 1, embed_dim))
        dpr = _drop_path_rates((depth,), drop_path_rate)[0]
        self.stage = FcaStage(embed_dim, embed_dim, grid, depth, num_heads, dpr,
                              downsample=False, window=window, rel_pos=False, num_prefix_tokens=1,
                              layer_scale_init=None, norm_eps=1e-6, mlp_ratio=mlp_ratio)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        trunc_normal_(self.pos_embed)
        trunc_normal_(self.cls_token)
        if init_weights:
            self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.stage(x))
        return self.head(x[:, 0])


# --------------------------------------------------------------------------------------------- configs
CFGS: dict[str, dict] = {
    "l1": dict(embed_dims=(64, 128, 192, 320), depths=(2, 2, 6, 2), num_heads=(6, 10)),
    "l2": dict(embed_dims=(96, 192, 320, 480), depths=(2, 2, 7, 2), num_heads=(10, 15)),
    "l3": dict(embed_dims=(96, 192, 320, 512), depths=(3, 6, 12, 3), num_heads=(10, 16)),
    "l4": dict(embed_dims=(128, 256, 512, 768), depths=(3, 6, 12, 3), num_heads=(16, 24)),
}


def _hybrid(cfg: str, window: int | None, **kwargs) -> FcaFormer:
    return FcaFormer(**{**CFGS[cfg], "window": window, **kwargs})


# --------------------------------------------------------------------------------------------- factories
@register_model(family="fcaformer", paper=PAPER, top1=74.3, params_m=5.9, gmacs=None, official=False)
def fcaformer_l0(**kwargs) -> PlainFcaFormer:
    """Plain FcaFormer, DeiT-Tiny width/depth (no official code: built from the paper)."""
    return PlainFcaFormer(**kwargs)


@register_model(family="fcaformer", paper=PAPER, top1=80.3, params_m=6.2, gmacs=1.4)
def fcaformer_l1(**kwargs) -> FcaFormer:
    return _hybrid("l1", 12, **kwargs)


@register_model(family="fcaformer", paper=PAPER, top1=83.1, params_m=16.3, gmacs=3.6)
def fcaformer_l2(**kwargs) -> FcaFormer:
    return _hybrid("l2", 12, **kwargs)


@register_model(family="fcaformer", paper=PAPER, top1=84.2, params_m=27.9, gmacs=6.7)
def fcaformer_l3(**kwargs) -> FcaFormer:
    return _hybrid("l3", 12, **kwargs)


@register_model(family="fcaformer", paper=PAPER, top1=84.9, params_m=65.6, gmacs=14.5)
def fcaformer_l4(**kwargs) -> FcaFormer:
    return _hybrid("l4", 12, **kwargs)


# CabViT-H: the FcaFormer hybrid with an unbounded cross-token window (the official CabViT README
# gives no per-variant top-1; sizes are those of the identical FcaFormer architectures).
@register_model(family="cabvit", paper=PAPER_CABVIT, top1=None, params_m=6.2, gmacs=1.4)
def cabvit_h_l1(**kwargs) -> FcaFormer:
    return _hybrid("l1", None, **kwargs)


@register_model(family="cabvit", paper=PAPER_CABVIT, top1=None, params_m=16.3, gmacs=3.6)
def cabvit_h_l2(**kwargs) -> FcaFormer:
    return _hybrid("l2", None, **kwargs)


@register_model(family="cabvit", paper=PAPER_CABVIT, top1=None, params_m=27.9, gmacs=6.7)
def cabvit_h_l3(**kwargs) -> FcaFormer:
    return _hybrid("l3", None, **kwargs)


def tiny(num_classes: int = 10, img_size: int = 64) -> FcaFormer:
    """A small hybrid FcaFormer (same block types; ~0.1M params) that trains in seconds on CPU.

    Layer scales start at 0.1 instead of 1e-6 so that a few hundred steps suffice.
    """
    return FcaFormer(embed_dims=(16, 32, 48, 64), depths=(1, 1, 3, 2), num_heads=(2, 2), img_size=img_size,
                     num_classes=num_classes, layer_scale_init=0.1)
