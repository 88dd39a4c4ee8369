"""CAS-ViT: Convolutional Additive Self-attention Vision Transformers.

Paper: Tianfang Zhang, Lei Li, Yang Zhou, Wentao Liu, Chen Qian, Jenq-Neng Hwang, Xiangyang Ji,
"CAS-ViT: Convolutional Additive Self-attention Vision Transformers for Efficient Mobile Applications",
arXiv:2408.03703, 2024.
Official code: https://github.com/Tianfang-Zhang/CAS-ViT (classification/model/rcvit.py, `rcvit_*`).

Our own plain-PyTorch implementation. Module names are ours and readable; `CASViT.checkpoint_filter`
maps the official state-dict keys onto them. The deploy form (BatchNorm folded, heads merged) lives in
`edgevit.rewrite.casvit`.

    @article{zhang2024cas,
      title={CAS-ViT: Convolutional Additive Self-attention Vision Transformers for Efficient Mobile Applications},
      author={Zhang, Tianfang and Li, Lei and Zhou, Yang and Liu, Wentao and Qian, Chen and Ji, Xiangyang},
      journal={arXiv preprint arXiv:2408.03703},
      year={2024}
    }
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from edgevit.models._registry import register_model
from edgevit.models.layers import DropPath, trunc_normal_

__all__ = ["CASViT", "AdditiveBlock", "AdditiveTokenMixer", "tiny"]

_PAPER = "CAS-ViT (Zhang et al., arXiv:2408.03703, 2024)"


# ---------------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------------


class Stem(nn.Module):
    """Two stride-2 3x3 convs with BatchNorm and ReLU: image -> 1/4 resolution."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        mid = out_chans // 2
        self.conv1 = nn.Conv2d(in_chans, mid, 3, stride=2, padding=1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(mid, out_chans, 3, stride=2, padding=1)
        self.norm2 = nn.BatchNorm2d(out_chans)
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(x)))


class Downsample(nn.Module):
    """Stride-2 3x3 conv + BatchNorm between stages (halves resolution, changes width)."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class LocalIntegration(nn.Module):
    """Local mixing before the token mixer: 1x1 conv, BN, depthwise 3x3, GELU, 1x1 conv."""

    def __init__(self, dim: int, ratio: float = 1.0, act_layer: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        mid = round(ratio * dim)
        self.conv_in = nn.Conv2d(dim, mid, 1)
        self.norm = nn.BatchNorm2d(mid)
        self.dwconv = nn.Conv2d(mid, mid, 3, padding=1, groups=mid)
        self.act = act_layer()
        self.conv_out = nn.Conv2d(mid, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.act(self.dwconv(self.norm(self.conv_in(x)))))


class SpatialGate(nn.Module):
    """Spatial attention: x * sigmoid(1x1(relu(bn(dw3x3(x))))) with a single-channel score map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.act = nn.ReLU()
        self.score = nn.Conv2d(dim, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.score(self.act(self.norm(self.dwconv(x)))))


class ChannelGate(nn.Module):
    """Channel attention: x * sigmoid(1x1(global mean of x)); the mean is a static global pool."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.adaptive_avg_pool2d(x, 1)  # GlobalAveragePool: any input size
        return x * torch.sigmoid(self.score(pooled))


class AdditiveTokenMixer(nn.Module):
    """Convolutional additive token mixer (CATM): proj(dw3x3(gate(q) + gate(k)) * v)."""

    def __init__(self, dim: int, qkv_bias: bool = False, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.q_spatial = SpatialGate(dim)
        self.q_channel = ChannelGate(dim)
        self.k_spatial = SpatialGate(dim)
        self.k_channel = ChannelGate(dim)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        q = self.q_channel(self.q_spatial(q))
        k = self.k_channel(self.k_spatial(k))
        return self.proj_drop(self.proj(self.dwconv(q + k) * v))


class ConvMlp(nn.Module):
    """Pointwise MLP on NCHW maps: 1x1 conv, GELU, 1x1 conv."""

    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class AdditiveBlock(nn.Module):
    """CAS block: x + local(x); x + mixer(bn(x)); x + mlp(bn(x)), with drop-path on the last two."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.local = LocalIntegration(dim, ratio=1.0, act_layer=act_layer)
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = AdditiveTokenMixer(dim, qkv_bias=qkv_bias, proj_drop=drop)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.local(x)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Stage(nn.Module):
    """Optional downsampling followed by a sequence of CAS blocks."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------


class CASViT(nn.Module):
    """CAS-ViT classifier: stem (1/4), four stages (1/4..1/32), BatchNorm, global mean, linear head(s).

    With `distillation=True` (all official checkpoints) there are two heads, `head` and `dist_head`;
    their outputs are averaged unless `distilled_training` is set, then training returns both.
    """

    def __init__(
        self,
        depths: Sequence[int] = (2, 2, 4, 2),
        embed_dims: Sequence[int] = (48, 56, 112, 220),
        mlp_ratio: float = 4.0,
        in_chans: int = 3,
        num_classes: int = 1000,
        img_size: int = 224,
        qkv_bias: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        distillation: bool = True,
        act_layer: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        if len(depths) != len(embed_dims):
            raise ValueError("depths and embed_dims must have the same length")
        self.num_classes = num_classes
        self.img_size = img_size  # fully convolutional: any size divisible by 32 works; recorded for metadata
        self.num_features = embed_dims[-1]
        self.distilled_training = False

        self.stem = Stem(in_chans, embed_dims[0])
        total = sum(depths)
        stages: list[nn.Module] = []
        start = 0
        for i, (depth, dim) in enumerate(zip(depths, embed_dims)):
            downsample = Downsample(embed_dims[i - 1], dim) if i > 0 else nn.Identity()
            blocks = [
                AdditiveBlock(
                    dim, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                    drop_path=drop_path_rate * (start + j) / max(total - 1, 1), act_layer=act_layer,
                )
                for j in range(depth)
            ]
            stages.append(Stage(downsample, blocks))
            start += depth
        self.stages = nn.ModuleList(stages)

        self.norm = nn.BatchNorm2d(self.num_features)
        self.head: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.dist_head: nn.Module | None = None
        if distillation:
            self.dist_head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def set_distilled_training(self, enable: bool = True) -> None:
        """Return (head, dist_head) logits in training mode, for a distillation loss."""
        self.distilled_training = enable

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = x.mean(dim=(2, 3))
        if self.dist_head is None:
            return self.head(x)
        out, dist = self.head(x), self.dist_head(x)
        if self.distilled_training and self.training:
            return out, dist
        return (out + dist) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.forward_head(self.forward_features(x))

    def checkpoint_filter(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map official `RCViT` keys onto ours; a state dict already in our names passes unchanged."""
        if not any(k.startswith(("patch_embed.", "network.")) for k in state_dict):
            return state_dict
        return {_official_to_ours(k): v for k, v in state_dict.items()}


# Official key -> ours. `network` interleaves stages (even index) and downsamples (odd index).
_RENAMES = [
    (r"^patch_embed\.0\.", "stem.conv1."),
    (r"^patch_embed\.1\.", "stem.norm1."),
    (r"^patch_embed\.3\.", "stem.conv2."),
    (r"^patch_embed\.4\.", "stem.norm2."),
    (r"\.local_perception\.network\.0\.", ".local.conv_in."),
    (r"\.local_perception\.network\.1\.", ".local.norm."),
    (r"\.local_perception\.network\.2\.", ".local.dwconv."),
    (r"\.local_perception\.network\.4\.", ".local.conv_out."),
    (r"\.attn\.oper_([qk])\.0\.block\.0\.", r".attn.\1_spatial.dwconv."),
    (r"\.attn\.oper_([qk])\.0\.block\.1\.", r".attn.\1_spatial.norm."),
    (r"\.attn\.oper_([qk])\.0\.block\.3\.", r".attn.\1_spatial.score."),
    (r"\.attn\.oper_([qk])\.1\.block\.1\.", r".attn.\1_channel.score."),
    (r"\.attn\.dwc\.", ".attn.dwconv."),
]


def _official_to_ours(key: str) -> str:
    m = re.match(r"^network\.(\d+)\.(.*)$", key)
    if m:
        idx, rest = int(m.group(1)), m.group(2)
        if idx % 2 == 0:  # a stage: network.{2i}.{j}.* -> stages.{i}.blocks.{j}.*
            key = f"stages.{idx // 2}.blocks.{rest}"
        else:  # a downsample: network.{2i+1}.proj/norm -> stages.{i+1}.downsample.conv/norm
            rest = re.sub(r"^proj\.", "conv.", rest)
            key = f"stages.{idx // 2 + 1}.downsample.{rest}"
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


# ---------------------------------------------------------------------------------------------------------------
# Default configs and factories
# ---------------------------------------------------------------------------------------------------------------

_CFGS: dict[str, dict[str, tuple[int, ...]]] = {
    "cas_vit_xs": {"depths": (2, 2, 4, 2), "embed_dims": (48, 56, 112, 220)},
    "cas_vit_s": {"depths": (3, 3, 6, 3), "embed_dims": (48, 64, 128, 256)},
    "cas_vit_m": {"depths": (3, 3, 6, 3), "embed_dims": (64, 96, 192, 384)},
    "cas_vit_t": {"depths": (3, 3, 6, 3), "embed_dims": (96, 128, 256, 512)},
}
_DEFAULT_CFG = {"crop_pct": 0.9, "first_conv": "stem.conv1", "classifier": ("head", "dist_head")}


def _create(name: str, **kwargs: object) -> CASViT:
    return CASViT(**_CFGS[name], **kwargs)  # type: ignore[arg-type]


# Published: parameters and ImageNet-1k top-1 at 224 from the official MODEL_ZOO.md (second figure there is
# at 384); GMACs from the paper's table (not in the official README), within 3% of `_macs.count_macs`.
@register_model(family="casvit", paper=_PAPER, top1=78.3, params_m=3.20, gmacs=0.56, aliases=("rcvit_xs",),
                **_DEFAULT_CFG)
def cas_vit_xs(**kwargs: object) -> CASViT:
    """CAS-ViT-XS: depths 2-2-4-2, widths 48-56-112-220."""
    return _create("cas_vit_xs", **kwargs)


@register_model(family="casvit", paper=_PAPER, top1=80.9, params_m=5.76, gmacs=0.93, aliases=("rcvit_s",),
                **_DEFAULT_CFG)
def cas_vit_s(**kwargs: object) -> CASViT:
    """CAS-ViT-S: depths 3-3-6-3, widths 48-64-128-256."""
    return _create("cas_vit_s", **kwargs)


@register_model(family="casvit", paper=_PAPER, top1=82.8, params_m=12.42, gmacs=1.89, aliases=("rcvit_m",),
                **_DEFAULT_CFG)
def cas_vit_m(**kwargs: object) -> CASViT:
    """CAS-ViT-M: depths 3-3-6-3, widths 64-96-192-384."""
    return _create("cas_vit_m", **kwargs)


@register_model(family="casvit", paper=_PAPER, top1=83.9, params_m=21.76, gmacs=3.59, aliases=("rcvit_t",),
                **_DEFAULT_CFG)
def cas_vit_t(**kwargs: object) -> CASViT:
    """CAS-ViT-T: depths 3-3-6-3, widths 96-128-256-512."""
    return _create("cas_vit_t", **kwargs)


def tiny(num_classes: int = 10, img_size: int = 64) -> nn.Module:
    """A CAS-ViT with the same block types at a fraction of the width and depth, for CPU training tests
    (e.g. scikit-learn digits upsampled to 64x64); any image size divisible by 32 works."""
    model = CASViT(
        depths=(1, 1, 1, 1), embed_dims=(16, 24, 32, 48), mlp_ratio=2.0,
        num_classes=num_classes, img_size=img_size,
    )
    model.edgevit_name = "cas_vit_tiny"  # type: ignore[assignment]
    return model
