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


class ConvThenTinyMLP(nn.Module):
    """Two 64-channel 3x3 convs (int8 pays in ONNX Runtime) and a tail of tiny Gemms (it does not)."""

    def __init__(self, num_classes: int = 10, width: int = 64, depth: int = 12) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 2, 1)
        self.convs = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1),
                                   nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.tail = TinyMLP(num_classes, dim=width, depth=depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.convs(self.stem(x))).flatten(1)
        for layer in self.tail.layers:
            x = x + torch.relu(layer(x))
        return self.tail.head(x)


if "toy_conv_tiny_mlp" not in list_models("toy"):

    @register_model(family="toy", paper="test model", official=False, img_size=64, num_classes=10)
    def toy_conv_tiny_mlp(num_classes: int = 10, **_: object) -> nn.Module:
        return ConvThenTinyMLP(num_classes=num_classes)
