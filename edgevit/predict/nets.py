"""Standard networks for host calibration, written here (no downloads): the calibration set of
`edgevit calibrate --device host`, deliberately *not* the edgevit zoo it is then judged on.

Each is a compact PyTorch definition of a published architecture at its usual 224 px input (weights are
random: only latency matters). The set spans what the cost model's terms need: dense, 3x3 and
depthwise convs (ResNet, VGG, MobileNet v1/v2/v3, SqueezeNet, ShuffleNet v2, EfficientNet-B0, AlexNet),
token GEMMs, attention, LayerNorm and GELU (ViT-Ti/S, DeiT-Ti at 160 px, ConvNeXt-style blocks in token
form, a non-local ResNet-18 whose attention stays MatMul + Softmax), some also at 160 px. Attention splits
q/k/v and reshapes at rank 4 so that pnnx maps it to ncnn.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NETWORKS: dict[str, Callable[[], nn.Module]] = {}
IMG_SIZE: dict[str, int] = {}


def register(name: str, img_size: int = 224) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    def deco(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in NETWORKS:
            raise ValueError(f"network {name} registered twice")
        NETWORKS[name] = fn
        IMG_SIZE[name] = img_size
        return fn

    return deco


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------------ ResNet, VGG, AlexNet
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, 1, act=None))
        self.short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride),
                                  conv_bn(width, cout, 1, act=None))
        self.short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


def _resnet(block: str, depths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, n in enumerate(depths):
        width = 64 * 2**i
        for j in range(n):
            stride = 2 if j == 0 and i > 0 else 1
            if block == "basic":
                layers.append(BasicBlock(cin, width, stride))
                cin = width
            else:
                layers.append(Bottleneck(cin, width, stride))
                cin = width * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


@register("resnet18")
def resnet18() -> nn.Module:
    return _resnet("basic", (2, 2, 2, 2))


@register("resnet34")
def resnet34() -> nn.Module:
    return _resnet("basic", (3, 4, 6, 3))


@register("resnet50")
def resnet50() -> nn.Module:
    return _resnet("bottleneck", (3, 4, 6, 3))


@register("vgg16")
def vgg16() -> nn.Module:
    cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    layers: list[nn.Module] = []
    cin = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, 1, 1), nn.ReLU()]
            cin = int(v)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Linear(4096, 4096),
                         nn.ReLU(), nn.Linear(4096, 1000))


@register("alexnet")
def alexnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(),
        nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(), nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(), nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))


# ------------------------------------------------------------------------------------------ mobile CNNs
@register("mobilenet_v1")
def mobilenet_v1() -> nn.Module:
    cfg = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))
    layers: list[nn.Module] = [conv_bn(3, 32, 3, 2)]
    cin = 32
    for cout, s in cfg:
        layers += [conv_bn(cin, cin, 3, s, groups=cin), conv_bn(cin, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int, expand: int, act: type[nn.Module] = nn.ReLU6,
                 se: bool = False) -> None:
        super().__init__()
        hid = cin * expand
        layers: list[nn.Module] = [conv_bn(cin, hid, 1, act=act)] if expand != 1 else []
        layers.append(conv_bn(hid, hid, k, s, groups=hid, act=act))
        if se:
            layers.append(SqueezeExcite(hid))
        layers.append(conv_bn(hid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, gate: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        r = max(8, c // 4)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, r, 1), nn.ReLU(), nn.Conv2d(r, c, 1), gate())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


def _inverted(cfg: tuple[tuple[int, int, int, int, int], ...], stem: int, head: int, act: type[nn.Module],
              se_from: int = 99) -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, stem, 3, 2, act=act)]
    cin = stem
    for i, (t, c, n, s, k) in enumerate(cfg):
        for j in range(n):
            layers.append(InvertedResidual(cin, c, k, s if j == 0 else 1, t, act=act, se=i >= se_from))
            cin = c
    return nn.Sequential(*layers, conv_bn(cin, head, 1, act=act), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(head, 1000))


@register("mobilenet_v2")
def mobilenet_v2() -> nn.Module:
    cfg = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 32, 3, 2, 3), (6, 64, 4, 2, 3), (6, 96, 3, 1, 3),
           (6, 160, 3, 2, 3), (6, 320, 1, 1, 3))
    return _inverted(cfg, 32, 1280, nn.ReLU6)


@register("mobilenet_v3")
def mobilenet_v3() -> nn.Module:
    cfg = ((1, 16, 1, 1, 3), (4, 24, 2, 2, 3), (3, 40, 3, 2, 5), (6, 80, 4, 2, 3), (6, 112, 2, 1, 3),
           (6, 160, 3, 2, 5))
    return _inverted(cfg, 16, 960, nn.Hardswish, se_from=2)


@register("efficientnet_b0")
def efficientnet_b0() -> nn.Module:
    cfg = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
           (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))
    return _inverted(cfg, 32, 1280, nn.SiLU, se_from=0)


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.s = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, 1, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.s(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


@register("squeezenet")
def squeezenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(64, 16, 64), Fire(128, 16, 64),
        nn.MaxPool2d(3, 2, ceil_mode=True), Fire(128, 32, 128), Fire(256, 32, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256), Fire(512, 64, 256),
        nn.Conv2d(512, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        src = cin if stride == 2 else half
        self.branch = nn.Sequential(conv_bn(src, half, 1), conv_bn(half, half, 3, stride, groups=half, act=None),
                                    conv_bn(half, half, 1))
        self.proj = (nn.Sequential(conv_bn(cin, cin, 3, 2, groups=cin, act=None), conv_bn(cin, half, 1))
                     if stride == 2 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.branch(b)], 1)
        else:
            out = torch.cat([self.proj(x), self.branch(x)], 1)
        n, c, h, w = out.shape
        return out.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


@register("shufflenet_v2")
def shufflenet_v2() -> nn.Module:
    layers: list[nn.Module] = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 24
    for cout, n in ((116, 4), (232, 8), (464, 4)):
        for j in range(n):
            layers.append(ShuffleUnit(cin, cout, 2 if j == 0 else 1))
            cin = cout
    return nn.Sequential(*layers, conv_bn(cin, 1024, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000))


# ------------------------------------------------------------------------------------------ transformers
class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections and rank-4 reshapes."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.hd = heads, dim // heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, self.hd).permute(0, 2, 1, 3)
        k = self.k(x).reshape(b, n, self.heads, self.hd).permute(0, 2, 3, 1)
        v = self.v(x).reshape(b, n, self.heads, self.hd).permute(0, 2, 1, 3)
        a = torch.softmax((q @ k) * self.hd**-0.5, dim=-1)
        return self.proj((a @ v).permute(0, 2, 1, 3).reshape(b, n, c))


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        hid = int(dim * ratio)
        super().__init__(nn.Linear(dim, hid), nn.GELU(), nn.Linear(hid, dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.n1, self.attn, self.n2, self.mlp = nn.LayerNorm(dim), Attention(dim, heads), nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.n1(x))
        return x + self.mlp(self.n2(x))


class ViT(nn.Module):
    """ViT (Dosovitskiy et al. 2021): patch embedding, class token, pre-norm blocks."""

    def __init__(self, dim: int, depth: int, heads: int, patch: int = 16, img: int = 224) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        n = (img // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


@register("vit_tiny")
def vit_tiny() -> nn.Module:
    return ViT(192, 12, 3)


@register("vit_small")
def vit_small() -> nn.Module:
    return ViT(384, 12, 6)


@register("deit_tiny_160", img_size=160)
def deit_tiny_160() -> nn.Module:
    return ViT(192, 12, 3, img=160)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block (Liu et al. 2022) in token form: dw7x7, then LayerNorm + MLP on (B, HW, C) tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.norm, self.mlp = nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.dw(x).flatten(2).transpose(1, 2)
        t = self.mlp(self.norm(t))
        return x + t.transpose(1, 2).reshape(b, c, h, w)


def _convnext(dims: tuple[int, ...], depths: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, dims[0], 4, 4)]
    for i, (d, n) in enumerate(zip(dims, depths, strict=True)):
        if i:
            layers.append(nn.Conv2d(dims[i - 1], d, 2, 2))
        layers += [ConvNeXtBlock(d) for _ in range(n)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dims[-1], 1000))


@register("convnext_nano")
def convnext_nano() -> nn.Module:
    return _convnext((80, 160, 320, 640), (2, 2, 8, 2))


@register("convnext_femto")
def convnext_femto() -> nn.Module:
    return _convnext((48, 96, 192, 384), (2, 2, 6, 2))


class NonLocal(nn.Module):
    """Non-local block (Wang et al. 2018): embedded-Gaussian attention over all positions, explicit
    MatMul + Softmax (pnnx keeps them as MatMul/Softmax layers, as in the zoo's attention)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        inner = c // 2
        self.theta, self.phi, self.g = nn.Conv2d(c, inner, 1), nn.Conv2d(c, inner, 1), nn.Conv2d(c, inner, 1)
        self.out = conv_bn(inner, c, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.theta(x).flatten(2).transpose(1, 2)  # (b, hw, c/2)
        k = self.phi(x).flatten(2)  # (b, c/2, hw)
        v = self.g(x).flatten(2).transpose(1, 2)
        a = torch.softmax(q @ k, dim=-1)
        y = (a @ v).transpose(1, 2).reshape(b, c // 2, h, w)
        return x + self.out(y)


@register("nonlocal_resnet18")
def nonlocal_resnet18() -> nn.Module:
    net = _resnet("basic", (2, 2, 2, 2))
    layers = list(net.children())
    # after the first block of stage 3 (28x28 -> 14x14 at 224 px) and of stage 4
    return nn.Sequential(*layers[:7], NonLocal(256), *layers[7:9], NonLocal(512), *layers[9:])


def _at(name: str, size: int) -> None:
    """The same architecture at another input size: more calibration rows with other shapes."""
    register(f"{name}_{size}", img_size=size)(NETWORKS[name])


for _name in ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3", "efficientnet_b0", "shufflenet_v2",
              "convnext_nano", "nonlocal_resnet18"):
    _at(_name, 160)


@register("vit_small_160", img_size=160)
def vit_small_160() -> nn.Module:
    return ViT(384, 12, 6, img=160)


def build(name: str) -> nn.Module:
    """A standard network in eval mode with seeded random weights."""
    if name not in NETWORKS:
        from edgevit.errors import ConfigError

        raise ConfigError(f"unknown standard network {name!r}; known: {', '.join(NETWORKS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = NETWORKS[name]()
    return model.eval()
