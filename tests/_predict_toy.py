"""A small ConvNeXt-style network in two deploy forms, exported to ncnn, for the predict CLI and gate tests.

`tokens=True` is the form edgevit's FcaFormer deploy uses (LayerNorm + MLP on (B, HW, C) tokens);
`tokens=False` applies the MLP to channels-last 4-D tensors, which pnnx wraps in Reshape-Gemm-Reshape
(the structure that once made FcaFormer 4x slower in ncnn's packed layout).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, tokens: bool) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.tokens = tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.tokens:
            t = self.dw(x).flatten(2).transpose(1, 2)
            t = self.fc2(self.act(self.fc1(self.norm(t))))
            return x + t.transpose(1, 2).reshape(b, c, h, w)
        t = self.dw(x).permute(0, 2, 3, 1)
        t = self.fc2(self.act(self.fc1(self.norm(t))))
        return x + t.permute(0, 3, 1, 2)


def toy(tokens: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 64, 4, 4), Block(64, tokens), Block(64, tokens), nn.Conv2d(64, 128, 2, 2),
                         Block(128, tokens), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)).eval()


def export_toy(out: Path, *, tokens: bool, name: str = "toy", img_size: int = 128) -> Path:
    """`out/<name>.ncnn` through edgevit's ncnn exporter (pnnx), with a sidecar naming the model."""

    from edgevit.artifact import ArtifactRecord, artifact_sha256, sidecar_path, write_record
    from edgevit.backends import ExportRequest, get_backend

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.ncnn"
    torch.manual_seed(0)
    req = ExportRequest(model_name=name, model=toy(tokens), example=torch.randn(1, 3, img_size, img_size),
                        output=path, img_size=img_size)
    get_backend("ncnn").export(req)
    write_record(ArtifactRecord(artifact=path.name, model=name, target="ncnn", precision="fp32", img_size=img_size,
                                sha256=artifact_sha256(path)), sidecar_path(path))
    return path
