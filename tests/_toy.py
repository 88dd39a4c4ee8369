"""A small hybrid ViT registered as `toy_vit` for export tests that must not wait for the real families.

Conv stem with BatchNorm (fused by deploy), attention blocks with LayerNorm, Softmax, GELU and
residual adds: every op class the int8 choices care about, at a size that exports in a second.
"""
from __future__ import annotations

import torch
from torch import nn

from edgevit.models import list_models, register_model


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, c // h).transpose(1, 2)
        k = self.k(x).reshape(b, n, h, c // h).transpose(1, 2)
        v = self.v(x).reshape(b, n, h, c // h).transpose(1, 2)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ToyViT(nn.Module):
    def __init__(self, num_classes: int = 10, dim: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, dim // 2, 3, 2, 1), nn.BatchNorm2d(dim // 2), nn.GELU(),
            nn.Conv2d(dim // 2, dim, 3, 2, 1), nn.BatchNorm2d(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, 2, 1), nn.BatchNorm2d(dim), nn.GELU(),
        )
        self.blocks = nn.Sequential(*[_Block(dim, 4) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        x = self.norm(self.blocks(x))
        return self.head(x.mean(1))


if "toy_vit" not in list_models("toy"):

    @register_model(family="toy", paper="test model", official=False, img_size=64, num_classes=10)
    def toy_vit(num_classes: int = 10, **_: object) -> nn.Module:
        return ToyViT(num_classes=num_classes)


class BatchLockedViT(ToyViT):
    """Derives the batch with `len(x)` like FcaFormer's patch merging: exporters fix it silently."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        x = self.stem(x).reshape(b, self.head.in_features, -1).transpose(1, 2)
        x = self.norm(self.blocks(x))
        return self.head(x.mean(1))


if "toy_batch_locked" not in list_models("toy"):

    @register_model(family="toy", paper="test model", official=False, img_size=64, num_classes=10)
    def toy_batch_locked(num_classes: int = 10, **_: object) -> nn.Module:
        return BatchLockedViT(num_classes=num_classes)
