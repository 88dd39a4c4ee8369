"""STViT / SViT: Vision Transformer with Super Token Sampling.

Paper: Huaibo Huang, Xiaoqiang Zhou, Jie Cao, Ran He, Tieniu Tan, "Vision Transformer with Super Token
Sampling", CVPR 2023 (arXiv:2211.11167).
Official code: https://github.com/hhb072/STViT (models/stvit.py, `stvit_small/base/large`).

Our own plain-PyTorch implementation. The train form keeps the structure the checkpoints and the paper
define (memory-efficient Swish as a custom autograd function, im2col/col2im over the 3x3 super-token
neighbourhood, adaptive pooling, affinity iterations under `no_grad`); `edgevit.deploy` turns it into
static export-friendly ops (`edgevit.rewrite.super_tokens`). `STViT.checkpoint_filter` maps the
official state-dict keys onto our readable names and drops the fixed identity kernels the official
code stores as parameters (`attn.unfold.weights` / `attn.fold.weights`).

    @inproceedings{huang2023stvit,
      title={Vision Transformer with Super Token Sampling},
      author={Huang, Huaibo and Zhou, Xiaoqiang and Cao, Jie and He, Ran and Tan, Tieniu},
      booktitle={CVPR},
      year={2023}
    }
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgevit.models._registry import register_model
from edgevit.models.layers import DropPath, LayerNorm2d, to_2tuple, trunc_normal_

__all__ = ["STViT", "StokenBlock", "SuperTokenAttention", "Attention", "tiny"]

_PAPER = "STViT / SViT (Huang et al., Vision Transformer with Super Token Sampling, CVPR 2023)"


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------


class _SwishFn(torch.autograd.Function):
    """x * sigmoid(x) recomputing sigmoid in backward (the official memory-saving Swish)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad * (s * (1 + x * (1 - s)))


class MemoryEfficientSwish(nn.Module):
    """Swish via a custom autograd function; the deploy form replaces it with nn.SiLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SwishFn.apply(x)


class ResDWC(nn.Module):
    """x + depthwise 3x3 conv(x); `fuse()` folds the identity into the kernel's centre tap."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv = self.conv
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, 1, conv.padding,
                          groups=conv.groups, bias=True)
        fused.weight.copy_(conv.weight)
        c = conv.kernel_size[0] // 2
        fused.weight[:, 0, c, c] += 1.0
        fused.bias.copy_(conv.bias if conv.bias is not None else torch.zeros_like(fused.bias))
        return fused


class ConvMlp(nn.Module):
    """1x1 conv, GELU, residual depthwise 3x3, 1x1 conv (on NCHW maps)."""

    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = act_layer()
        self.drop = nn.Dropout(drop)
        self.dwconv = ResDWC(hidden, 3)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(self.dwconv(x)))


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of an NCHW map (1x1-conv projections).

    The official layout: qkv channels are grouped per head as [q | k | v], attention is k^T q with the
    softmax over keys (dim -2)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(x).reshape(B, self.num_heads, 3 * C // self.num_heads, H * W).chunk(3, dim=2)
        attn = ((k.transpose(-1, -2) @ q) * self.scale).softmax(dim=-2)  # (B, heads, N keys, N queries)
        x = (v @ self.attn_drop(attn)).reshape(B, C, H, W)
        return self.proj_drop(self.proj(x))


class SuperTokenAttention(nn.Module):
    """Super token attention (STA): sample super tokens from pixels by sparse association with the 3x3
    neighbourhood of grid-initialised super tokens, refine them with self-attention, map them back.

    With `stoken_size` (1, 1) it is plain self-attention over the pixels (`refine` alone).
    `feature_size` is the input resolution at the model's `img_size`; the deploy form uses it to make
    padding and pooling static.
    """

    def __init__(self, dim: int, stoken_size: tuple[int, int], n_iter: int = 1, num_heads: int = 8,
                 qkv_bias: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 feature_size: tuple[int, int] = (56, 56)) -> None:
        super().__init__()
        self.dim = dim
        self.n_iter = n_iter
        self.stoken_size = to_2tuple(stoken_size)
        self.feature_size = to_2tuple(feature_size)
        self.scale = dim ** -0.5
        self.refine = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                                proj_drop=proj_drop)

    @property
    def samples_super_tokens(self) -> bool:
        return self.stoken_size[0] > 1 or self.stoken_size[1] > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._stoken_forward(x) if self.samples_super_tokens else self.refine(x)

    def _stoken_forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H0, W0 = x.shape
        h, w = self.stoken_size
        pad_r, pad_b = (w - W0 % w) % w, (h - H0 % h) % h
        if pad_r > 0 or pad_b > 0:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        H, W = x.shape[-2:]
        hh, ww = H // h, W // w

        stokens = F.adaptive_avg_pool2d(x, (hh, ww))  # (B, C, hh, ww): grid initialisation
        pixels = x.reshape(B, C, hh, h, ww, w).permute(0, 2, 4, 3, 5, 1).reshape(B, hh * ww, h * w, C)

        with torch.no_grad():  # the association is not back-propagated (official training recipe)
            for i in range(self.n_iter):
                neighbours = _unfold3x3(stokens)  # (B, hh*ww, C, 9)
                affinity = (pixels @ neighbours * self.scale).softmax(-1)  # (B, hh*ww, h*w, 9)
                affinity_sum = _fold3x3(affinity.sum(2, keepdim=True), hh, ww)  # (B, 1, hh, ww)
                if i < self.n_iter - 1:
                    stokens = _fold3x3(pixels.transpose(-1, -2) @ affinity, hh, ww) / (affinity_sum + 1e-12)

        stokens = _fold3x3(pixels.transpose(-1, -2) @ affinity, hh, ww) / (affinity_sum.detach() + 1e-12)
        stokens = self.refine(stokens)
        pixels = _unfold3x3(stokens) @ affinity.transpose(-1, -2)  # (B, hh*ww, C, h*w)
        pixels = pixels.reshape(B, hh, ww, C, h, w).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)
        if pad_r > 0 or pad_b > 0:
            pixels = pixels[:, :, :H0, :W0]
        return pixels


def _unfold3x3(x: torch.Tensor) -> torch.Tensor:
    """(B, C, hh, ww) -> (B, hh*ww, C, 9): each grid cell's zero-padded 3x3 neighbourhood (im2col)."""
    B, C, hh, ww = x.shape
    return F.unfold(x, 3, padding=1).transpose(1, 2).reshape(B, hh * ww, C, 9)


def _fold3x3(x: torch.Tensor, hh: int, ww: int) -> torch.Tensor:
    """(B, hh*ww, C, 9) -> (B, C, hh, ww): scatter-add back onto the grid, the adjoint of `_unfold3x3`."""
    B, _, C, _ = x.shape
    return F.fold(x.permute(0, 2, 3, 1).reshape(B, C * 9, hh * ww), (hh, ww), 3, padding=1)


class StokenBlock(nn.Module):
    """Conv position embedding, then x + STA(LN(x)) and x + MLP(BN(x)), optionally layer-scaled."""

    def __init__(self, dim: int, stoken_size: tuple[int, int], n_iter: int = 1, num_heads: int = 1,
                 mlp_ratio: float = 4.0, qkv_bias: bool = False, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, act_layer: type[nn.Module] = nn.GELU, layerscale: bool = False,
                 init_values: float = 1e-5, feature_size: tuple[int, int] = (56, 56)) -> None:
        super().__init__()
        self.pos_embed = ResDWC(dim, 3)
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.attn = SuperTokenAttention(dim, stoken_size, n_iter=n_iter, num_heads=num_heads, qkv_bias=qkv_bias,
                                        attn_drop=attn_drop, proj_drop=drop, feature_size=feature_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2: nn.Module = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.gamma1: nn.Parameter | None = None
        self.gamma2: nn.Parameter | None = None
        if layerscale:
            self.gamma1 = nn.Parameter(init_values * torch.ones(1, dim, 1, 1))
            self.gamma2 = nn.Parameter(init_values * torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_embed(x)
        a = self.attn(self.norm1(x))
        x = x + self.drop_path(a if self.gamma1 is None else self.gamma1 * a)
        m = self.mlp(self.norm2(x))
        return x + self.drop_path(m if self.gamma2 is None else self.gamma2 * m)

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        """Deploy form: BatchNorm folded into the MLP's first 1x1 conv, layer scales into the last
        projections (attention output and MLP output are linear in them). Modifies in place."""
        from edgevit.rewrite.fuse import fuse_bn_conv  # lazy: edgevit.rewrite imports the model zoo

        if isinstance(self.norm2, nn.BatchNorm2d):
            self.mlp.fc1 = fuse_bn_conv(self.norm2, self.mlp.fc1)
            self.norm2 = nn.Identity()
        proj = getattr(self.attn, "refine", self.attn).proj  # STA wraps its refine attention
        for gamma, conv in ((self.gamma1, proj), (self.gamma2, self.mlp.fc2)):
            if gamma is not None:
                g = gamma.detach().reshape(-1)
                conv.weight.mul_(g.reshape(-1, *[1] * (conv.weight.ndim - 1)))
                conv.bias.mul_(g)
        self.gamma1 = self.gamma2 = None
        return self


class Stem(nn.Module):
    """Four 3x3 convs (two with stride 2), each followed by GELU and BatchNorm: image -> 1/4 resolution."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        mid = out_chans // 2
        self.conv1 = nn.Conv2d(in_chans, mid, 3, 2, 1)
        self.act1 = nn.GELU()
        self.norm1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1)
        self.act2 = nn.GELU()
        self.norm2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_chans, 3, 2, 1)
        self.act3 = nn.GELU()
        self.norm3 = nn.BatchNorm2d(out_chans)
        self.conv4 = nn.Conv2d(out_chans, out_chans, 3, 1, 1)
        self.act4 = nn.GELU()
        self.norm4 = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.act1(self.conv1(x)))
        x = self.norm2(self.act2(self.conv2(x)))
        x = self.norm3(self.act3(self.conv3(x)))
        return self.norm4(self.act4(self.conv4(x)))


class Downsample(nn.Module):
    """Stride-2 3x3 conv + BatchNorm between stages; `fuse()` folds the BatchNorm."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, 3, 2, 1)
        self.norm: nn.Module = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))

    def fuse(self) -> nn.Module:
        from edgevit.rewrite.fuse import fuse_conv_bn  # lazy: edgevit.rewrite imports the model zoo

        if isinstance(self.norm, nn.BatchNorm2d):
            return fuse_conv_bn(self.conv, self.norm)
        return self


class Stage(nn.Module):
    """Optional downsampling followed by a sequence of super-token blocks."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------


def _down(size: int) -> int:
    """Output size of a 3x3, stride-2, padding-1 conv."""
    return (size - 1) // 2 + 1


class STViT(nn.Module):
    """STViT classifier: conv stem (1/4), four stages of super-token blocks (1/4..1/32), 1x1 projection,
    BatchNorm, Swish, global mean, linear head."""

    def __init__(
        self,
        embed_dim: Sequence[int] = (64, 128, 320, 512),
        depths: Sequence[int] = (3, 5, 9, 3),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        n_iter: Sequence[int] = (1, 1, 1, 1),
        stoken_size: Sequence[int] = (8, 4, 1, 1),
        projection: int = 1024,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layerscale: Sequence[bool] = (False, False, False, False),
        init_values: float = 1e-5,
        in_chans: int = 3,
        num_classes: int = 1000,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.img_size = to_2tuple(img_size)  # sets the static resolution of the deploy form
        self.num_features = projection

        self.stem = Stem(in_chans, embed_dim[0])
        self.pos_drop = nn.Dropout(drop_rate)
        size = (_down(_down(self.img_size[0])), _down(_down(self.img_size[1])))
        total = sum(depths)
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages: list[nn.Module] = []
        for i, depth in enumerate(depths):
            if i > 0:
                downsample: nn.Module = Downsample(embed_dim[i - 1], embed_dim[i])
                size = (_down(size[0]), _down(size[1]))
            else:
                downsample = nn.Identity()
            start = sum(depths[:i])
            blocks = [
                StokenBlock(embed_dim[i], to_2tuple(stoken_size[i]), n_iter=n_iter[i], num_heads=num_heads[i],
                            mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                            drop_path=dpr[start + j], layerscale=layerscale[i], init_values=init_values,
                            feature_size=size)
                for j in range(depth)
            ]
            stages.append(Stage(downsample, blocks))
        self.stages = nn.ModuleList(stages)

        self.proj = nn.Conv2d(embed_dim[-1], projection, 1)
        self.proj_norm: nn.Module = nn.BatchNorm2d(projection)
        self.act: nn.Module = MemoryEfficientSwish()
        self.head: nn.Module = nn.Linear(projection, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_drop(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.act(self.proj_norm(self.proj(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def fuse(self) -> nn.Module:
        """Deploy form: the head's BatchNorm folded into the 1x1 projection. Modifies in place."""
        from edgevit.rewrite.fuse import fuse_conv_bn  # lazy: edgevit.rewrite imports the model zoo

        if isinstance(self.proj_norm, nn.BatchNorm2d):
            self.proj = fuse_conv_bn(self.proj, self.proj_norm)
            self.proj_norm = nn.Identity()
        return self

    def checkpoint_filter(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map official `STViT` keys onto ours and drop the identity unfold/fold kernels (their values
        are fixed by construction and unused here); a state dict in our names passes unchanged."""
        if not any(k.startswith(("patch_embed.", "layers.")) for k in state_dict):
            return state_dict
        return {_official_to_ours(k): v for k, v in state_dict.items() if not _IDENTITY_KEY.search(k)}


_IDENTITY_KEY = re.compile(r"\.attn\.(unfold|fold)\.weights$")
# Official stem: Sequential(conv, GELU, BN) x 4 -> indices of the convs and norms.
_STEM = {0: "conv1", 2: "norm1", 3: "conv2", 5: "norm2", 6: "conv3", 8: "norm3", 9: "conv4", 11: "norm4"}
_RENAMES = [
    (r"\.norm1\.norm\.", ".norm1."),
    (r"\.attn\.stoken_refine\.", ".attn.refine."),
    (r"\.mlp2\.conv\.", ".mlp.dwconv."),
    (r"\.mlp2\.", ".mlp."),
    (r"\.gamma_([12])$", r".gamma\1"),
    (r"^norm\.", "proj_norm."),
]


def _official_to_ours(key: str) -> str:
    m = re.match(r"^patch_embed\.proj\.(\d+)\.(.*)$", key)
    if m:
        return f"stem.{_STEM[int(m.group(1))]}.{m.group(2)}"
    m = re.match(r"^layers\.(\d+)\.downsample\.proj\.([01])\.(.*)$", key)
    if m:  # the official stage i ends with the downsample that our stage i + 1 starts with
        part = "conv" if m.group(2) == "0" else "norm"
        return f"stages.{int(m.group(1)) + 1}.downsample.{part}.{m.group(3)}"
    key = re.sub(r"^layers\.(\d+)\.blocks\.", r"stages.\1.blocks.", key)
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


# ---------------------------------------------------------------------------------------------------------------
# Default configs and factories
# ---------------------------------------------------------------------------------------------------------------

_CFGS: dict[str, dict[str, object]] = {
    "stvit_small": dict(embed_dim=(64, 128, 320, 512), depths=(3, 5, 9, 3), num_heads=(1, 2, 5, 8),
                        layerscale=(False, False, False, False), init_values=1e-5),
    "stvit_base": dict(embed_dim=(96, 192, 384, 512), depths=(4, 6, 14, 6), num_heads=(2, 3, 6, 8),
                       layerscale=(False, False, True, True), init_values=1e-6),
    "stvit_large": dict(embed_dim=(96, 192, 448, 640), depths=(4, 7, 19, 8), num_heads=(2, 3, 7, 10),
                        layerscale=(False, False, True, True), init_values=1e-6),
}
_DEFAULT_CFG = {"crop_pct": 0.9, "first_conv": "stem.conv1", "classifier": "head"}


def _create(name: str, **kwargs: object) -> STViT:
    return STViT(**{**_CFGS[name], **kwargs})  # type: ignore[arg-type]


# Published: ImageNet-1k top-1, parameters and FLOPs (GMACs) at 224 from the official README. The README's
# "25M" for SViT-S is rounded: the official definition has 25.50M trainable parameters (conformance manifest),
# 2% above 25.0, so we record 25.5; B (51.69M vs "52M") and L (94.97M vs "95M") are within 1% as published.
@register_model(family="stvit", paper=_PAPER, top1=83.6, params_m=25.5, gmacs=4.4, aliases=("svit_s",),
                **_DEFAULT_CFG)
def stvit_small(**kwargs: object) -> STViT:
    """SViT-S: depths 3-5-9-3, widths 64-128-320-512, super tokens 8x8 / 4x4 in the first two stages."""
    return _create("stvit_small", **kwargs)


@register_model(family="stvit", paper=_PAPER, top1=84.8, params_m=52.0, gmacs=9.9, aliases=("svit_b",),
                **_DEFAULT_CFG)
def stvit_base(**kwargs: object) -> STViT:
    """SViT-B: depths 4-6-14-6, widths 96-192-384-512, layer scale in the last two stages."""
    return _create("stvit_base", **kwargs)


@register_model(family="stvit", paper=_PAPER, top1=85.3, params_m=95.0, gmacs=15.6, aliases=("svit_l",),
                **_DEFAULT_CFG)
def stvit_large(**kwargs: object) -> STViT:
    """SViT-L: depths 4-7-19-8, widths 96-192-448-640, layer scale in the last two stages."""
    return _create("stvit_large", **kwargs)


def tiny(num_classes: int = 10, img_size: int = 64) -> nn.Module:
    """An STViT with the same block types (super-token attention in stages 1-2, layer scale in 3-4) at a
    fraction of the width and depth, for CPU training tests (e.g. scikit-learn digits at 64x64); any
    image size divisible by 32 works."""
    model = STViT(
        embed_dim=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), stoken_size=(8, 4, 1, 1),
        projection=128, mlp_ratio=2.0, layerscale=(False, False, True, True), init_values=0.1,
        num_classes=num_classes, img_size=img_size,
    )
    model.edgevit_name = "stvit_tiny"  # type: ignore[assignment]
    return model
