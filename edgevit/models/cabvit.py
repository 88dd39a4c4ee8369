"""CabViT-P: the plain CabViT model as released in the official code.

Paper: Haokui Zhang, Wenze Hu, Xiaoyu Wang, "CabViT: Cross Attention among Blocks for Vision
Transformer", arXiv:2211.07198 (later published as FcaFormer, ICCV 2023). Official code:
https://github.com/hkzhang-git/FcaFormer (`models/cabvit_p/cabvit_p.py`).

The released `cabvit_p_l0` is a plain DeiT-Tiny layout: 16x16 patches, class token, absolute
position embedding, 12 pre-norm blocks whose attention takes no cross tokens. The plain model *with*
cross tokens is `fcaformer_l0` in `fcaformer.py`. The attention is the family's `CrossAttention`
(with no cross tokens), so `edgevit.deploy` gives it the same static rewrite.
"""
from __future__ import annotations

import torch
from torch import nn

from edgevit.models._registry import register_model
from edgevit.models.fcaformer import CrossAttention, Mlp, _drop_path_rates, _init_weights
from edgevit.models.layers import DropPath, to_2tuple, trunc_normal_

PAPER = "Zhang et al., CabViT: Cross Attention among Blocks for Vision Transformer, arXiv:2211.07198"


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, num_tokens: int, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrossAttention(dim, num_heads, num_tokens=num_tokens)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided conv, flattened to tokens (B, N, C)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class CabViTPlain(nn.Module):
    """DeiT-style classifier: patch embedding, class token, position embedding, blocks, norm, head."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, init_weights: bool = True) -> None:
        super().__init__()
        h, w = to_2tuple(img_size)
        if h % patch_size or w % patch_size:
            raise ValueError(f"img_size must be divisible by {patch_size}, got {img_size}")
        self.img_size = (h, w)
        self.num_classes = num_classes
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        num_tokens = (h // patch_size) * (w // patch_size) + 1
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim))
        dpr = _drop_path_rates((depth,), drop_path_rate)[0]
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, num_tokens, mlp_ratio, dp) for dp in dpr])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        trunc_normal_(self.pos_embed)
        trunc_normal_(self.cls_token)
        if init_weights:  # False skips the costly truncated-normal init when a checkpoint overwrites it
            self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])

    def checkpoint_filter(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official keys already match ours (timm DeiT names); nothing to map."""
        return dict(state_dict)


@register_model(family="cabvit", paper=PAPER, top1=None, params_m=5.7, gmacs=1.3)
def cabvit_p_l0(**kwargs) -> CabViTPlain:
    """Official CabViT-P L0 layout (DeiT-Tiny); the README gives no top-1 for it."""
    return CabViTPlain(**kwargs)


def tiny(num_classes: int = 10, img_size: int = 64) -> CabViTPlain:
    """A small CabViT-P (8x8 patches, width 32, 2 blocks) that trains in seconds on CPU.

    It keeps PyTorch's fan-in init: the std-0.02 init of the full model starves a width-32 ViT
    (digits, 400 steps of batch 32: 42 % top-1 with it, 87 % without).
    """
    return CabViTPlain(img_size=img_size, patch_size=8, num_classes=num_classes, embed_dim=32, depth=2,
                       num_heads=2, init_weights=False)
