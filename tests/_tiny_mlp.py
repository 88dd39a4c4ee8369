"""`toy_tiny_mlp`: a model too small for int8 to pay in ONNX Runtime (issue 18's refusal path).

Its Gemms work on 1 x 48 rows: each takes about a microsecond in float, while the int8 form adds a
QuantizeLinear/DequantizeLinear pair per node that costs more than the Gemm saves, so the measured
selection keeps every node float and the export refuses int8 unless forced.
"""
from __future__ import annotations

import torch
from torch import nn

from edgevit.models import list_models, register_model


class TinyMLP(nn.Module):
    def __init__(self, num_classes: int = 10, dim: int = 48, depth: int = 6) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.inp = nn.Linear(48, dim)
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(self.pool(x).flatten(1))
        for layer in self.layers:
            x = x + torch.relu(layer(x))
        return self.head(x)


if "toy_tiny_mlp" not in list_models("toy"):

    @register_model(family="toy", paper="test model", official=False, img_size=32, num_classes=10)
    def toy_tiny_mlp(num_classes: int = 10, **_: object) -> nn.Module:
        return TinyMLP(num_classes=num_classes)
