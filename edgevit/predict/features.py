"""Cost features of a network graph: per-layer work by kernel class, computed by our own code.

Every layer becomes (kernel class, work) pairs: multiply-accumulates for compute kernels (dense conv by
kernel size and stride, grouped and depthwise conv, InnerProduct, Gemm, MatMul/attention), elements
touched for traffic kernels (elementwise, transcendental activations, normalisation, pooling, layout
ops such as Permute/Reshape/Concat). Units are millions (MMACs, M elements), so fitted coefficients
read as ms per million. Layers ncnn quantized (`8=int8_scale_term`) go to the `*_int8` classes.

Handlers are registered per ncnn layer type (`LAYER_WORK`); an unknown type is kept as `unknown`
and reported, so a prediction can say it does not know what a layer costs.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgevit.predict.ncnn_graph import NcnnLayer, Shape, ncnn_blob_shapes, parse_ncnn_param

# Fine kernel classes, in display order. COMPUTE are MMACs, TRAFFIC are M elements.
COMPUTE = ("conv1x1", "conv3x3s1", "conv3x3s2", "convkxk", "conv_group", "dwconv3", "dwconvk", "deconv",
           "fc", "gemm", "matmul")
TRAFFIC = ("eltwise", "transcend", "softmax", "norm", "pool", "layout", "conv_io", "dw_io", "weights")
INT8_CLASSES = tuple(f"{c}_int8" for c in ("conv1x1", "conv3x3s1", "conv3x3s2", "convkxk", "conv_group",
                                              "dwconv3", "dwconvk", "fc", "gemm"))
CLASSES = COMPUTE + TRAFFIC + INT8_CLASSES
# Which classes make a graph "transformer-like": a board calibrated without them extrapolates on them.
TRANSFORMER_CLASSES = ("gemm", "matmul", "softmax", "norm")

NO_WORK = frozenset({"Input", "MemoryData", "Noop", "Split"})  # Split shares the blob (refcount), no copy
OTHER = frozenset({"PriorBox", "DetectionOutput", "Yolov3DetectionOutput", "YoloDetectionOutput"})
# Activation fused into Convolution/InnerProduct/Gemm (param 9): 1 relu 2 leaky 3 clip 4 sigmoid 5 mish
# 6 hardswish
_FUSED_TRANSCEND = (4, 5)

Work = list[tuple[str, float]]
Handler = Callable[[NcnnLayer, list[Shape], list[Shape]], Work]
LAYER_WORK: dict[str, Handler] = {}


def _register(*types: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for t in types:
            if t in LAYER_WORK:
                raise ValueError(f"layer type {t} registered twice")
            LAYER_WORK[t] = fn
        return fn

    return deco


def _elems(shape: Shape) -> float:
    return float(math.prod(shape)) if shape else 0.0


def _m(x: float) -> float:
    return x / 1e6


_INT8_KEY = {"Gemm": 18, "MultiHeadAttention": 18}  # int8_scale_term; 8 for Convolution*/InnerProduct


def _int8(layer: NcnnLayer) -> str:
    return "_int8" if layer.int(_INT8_KEY.get(layer.type, 8)) > 0 else ""


def _fused_activation(layer: NcnnLayer, out: Shape) -> Work:
    act = layer.int(9)
    if act == 0:
        return []
    return [("transcend" if act in _FUSED_TRANSCEND else "eltwise", _m(_elems(out)))]


def _io(ins: list[Shape], outs: list[Shape]) -> float:
    """Activation elements a kernel reads and writes (the memory-bound part of conv/GEMM work)."""
    return _m(sum(_elems(s) for s in ins) + sum(_elems(s) for s in outs))


def _spatial(shape: Shape) -> float:
    """Output positions of a conv: everything but the channel axis."""
    return float(math.prod(shape[1:])) if len(shape) >= 2 else 1.0


@_register("Convolution", "Convolution1D", "Convolution3D")
def _conv(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    out = outs[0]
    kw = layer.int(1)
    kh = layer.int(11, kw)
    sw = layer.int(3, 1)
    sh = layer.int(13, sw)
    dil = max(layer.int(2, 1), layer.int(12, layer.int(2, 1)))
    macs = _m(_spatial(out) * layer.int(6))
    if kw == 1 and kh == 1:
        cls = "conv1x1"
    elif kw == 3 and kh == 3 and dil == 1:
        cls = "conv3x3s1" if sw == 1 and sh == 1 else "conv3x3s2"
    else:
        cls = "convkxk"
    return [(cls + _int8(layer), macs), ("conv_io", _io(ins, outs)), ("weights", _m(layer.int(6))),
            *_fused_activation(layer, out)]


@_register("ConvolutionDepthWise", "ConvolutionDepthWise1D", "ConvolutionDepthWise3D")
def _dwconv(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    out = outs[0]
    group = layer.int(7, 1)
    channels_in = ins[0][0] if ins and ins[0] else 0
    macs = _m(_spatial(out) * layer.int(6))
    kw = layer.int(1)
    kh = layer.int(11, kw)
    if group == layer.int(0) and group == channels_in:
        cls = "dwconv3" if max(kw, kh) <= 3 else "dwconvk"
    else:
        cls = "conv_group"
    io = "dw_io" if cls != "conv_group" else "conv_io"
    return [(cls + _int8(layer), macs), (io, _io(ins, outs)), ("weights", _m(layer.int(6))),
            *_fused_activation(layer, out)]


@_register("Deconvolution", "DeconvolutionDepthWise", "Deconvolution1D", "Deconvolution3D",
           "DeconvolutionDepthWise1D", "DeconvolutionDepthWise3D")
def _deconv(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("deconv", _m(_spatial(ins[0]) * layer.int(6))), *_fused_activation(layer, outs[0])]


@_register("InnerProduct")
def _inner_product(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    weights = layer.int(2)  # InnerProduct: 0=num_output 1=bias_term 2=weight_data_size 8=int8 9=activation
    src = ins[0]
    num_out = layer.int(0)
    rows = src[0] if len(src) == 2 and num_out and src[1] * num_out == weights else 1
    cls = ("fc" if rows == 1 else "gemm") + _int8(layer)
    return [(cls, _m(rows * weights)), ("weights", _m(weights)), *_fused_activation(layer, outs[0])]


@_register("Gemm")
def _gemm(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    k = layer.int(9)
    if k <= 0 and ins:
        a = ins[0]
        k = a[-2] if layer.int(2) and len(a) >= 2 else a[-1]
    n = layer.int(8) or (outs[0][-1] if outs and outs[0] else 0)
    weights = [("weights", _m(k * n))] if layer.int(5) else []  # constant B: weights streamed from memory
    return [("gemm" + _int8(layer), _m(_elems(outs[0]) * k)), ("conv_io", _io(ins[:1], outs)), *weights,
            *_fused_activation(layer, outs[0])]


@_register("MatMul")
def _matmul(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    k = ins[0][-1] if ins and ins[0] else 0
    return [("matmul", _m(_elems(outs[0]) * k))]


@_register("MultiHeadAttention", "SDPA")
def _mha(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    """Projections are Gemm work; Q.K^T and attention.V are MatMul work; the softmax over heads."""
    if layer.type == "SDPA":  # q (heads, Nq, d), k (heads, Nk, d): no projections
        q, kk = ins[0], ins[1]
        heads, nq, d = (q + (1,))[:3] if len(q) == 3 else (1, q[0], q[-1])
        nk = kk[-2] if len(kk) >= 2 else 1
        return [("matmul", _m(2 * heads * nq * nk * d)), ("softmax", _m(heads * nq * nk))]
    embed = layer.int(0)
    heads = max(1, layer.int(1))
    q = ins[0]
    k = ins[1] if len(ins) > 1 else q
    v = ins[2] if len(ins) > 2 else k
    nq, nk = (q[-2] if len(q) >= 2 else 1), (k[-2] if len(k) >= 2 else 1)
    proj = nq * q[-1] * embed + nk * k[-1] * embed + nk * v[-1] * embed + nq * embed * embed
    weights = (q[-1] + k[-1] + v[-1] + embed) * embed
    return [("gemm", _m(proj)), ("weights", _m(weights)), ("conv_io", _io(ins, outs)), ("matmul", _m(2 * nq * nk * embed)), ("softmax", _m(heads * nq * nk))]


_CHEAP = ("BinaryOp", "Eltwise", "ReLU", "Clip", "BatchNorm", "Scale", "Bias", "HardSigmoid", "HardSwish",
          "PReLU", "Dropout", "Threshold", "AbsVal", "Power", "CELU", "Shrink", "Diag", "Cast", "Quantize",
          "Dequantize", "Requantize")
_TRANSCEND = ("Sigmoid", "Swish", "Mish", "TanH", "GELU", "ELU", "SELU", "Exp", "Log", "Erf", "GLU")
# UnaryOp op_type: 0 abs 1 neg 2 floor 3 ceil 4 square 5 sqrt 6 rsqrt 7 exp 8 log 9 sin 10 cos 11 tan
# 12 asin 13 acos 14 atan 15 reciprocal 16 tanh 17 log10 18 round 19 trunc
_UNARY_CHEAP = (0, 1, 2, 3, 4, 15, 18, 19)


@_register(*_CHEAP)
def _cheap(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("eltwise", _m(sum(_elems(s) for s in outs)))]


@_register(*_TRANSCEND)
def _transcend(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("transcend", _m(sum(_elems(s) for s in outs)))]


@_register("UnaryOp")
def _unary(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("eltwise" if layer.int(0) in _UNARY_CHEAP else "transcend", _m(_elems(outs[0])))]


@_register("Softmax")
def _softmax(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("softmax", _m(_elems(outs[0])))]


@_register("LayerNorm", "GroupNorm", "InstanceNorm", "Normalize", "LRN", "MVN", "RMSNorm", "Reduction",
           "ArgMax", "CumulativeSum")
def _norm(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("norm", _m(_elems(ins[0]) if ins else 0.0))]


@_register("Pooling", "Pooling1D", "Pooling3D", "AdaptivePooling")
def _pool(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("pool", _m(_elems(ins[0]) if ins else 0.0))]


@_register("Permute", "Reshape", "Flatten", "Concat", "Slice", "Crop", "Padding", "ShuffleChannel", "Interp",
           "PixelShuffle", "Reorg", "Tile", "Squeeze", "ExpandDims", "Packing", "CopyTo", "Fold", "Unfold",
           "Flip", "DeepCopy", "Gather", "Embed")
def _layout(layer: NcnnLayer, ins: list[Shape], outs: list[Shape]) -> Work:
    return [("layout", _m(sum(_elems(s) for s in outs)))]


# ---------------------------------------------------------------- whole-network features
@dataclass
class LayerCost:
    """One layer's contribution: its type and name, and work per kernel class."""

    type: str
    name: str
    work: dict[str, float]


@dataclass
class NetworkFeatures:
    """What the cost model reads: work per kernel class, layer counts, and what was not understood."""

    name: str
    work: dict[str, float]  # class -> MMACs or M elements
    layers: int  # layers that run (not Input/MemoryData/Split/Noop)
    layer_types: dict[str, int]
    source: str = ""  # "ncnn param" | "onnx"
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    unknown_types: list[str] = field(default_factory=list)
    per_layer: list[LayerCost] = field(default_factory=list)

    @property
    def total_macs_m(self) -> float:
        return sum(v for k, v in self.work.items() if k.split("_int8")[0] in COMPUTE)

    def classes_present(self, min_share: float = 0.0) -> list[str]:
        return [k for k, v in self.work.items() if v > 0]

    def to_dict(self, *, layers: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "source": self.source, "input_shapes": self.input_shapes,
            "layers": self.layers, "work": {k: round(v, 6) for k, v in self.work.items() if v},
            "layer_types": self.layer_types, "unknown_types": self.unknown_types,
        }
        if layers:
            d["per_layer"] = [{"type": c.type, "name": c.name, "work": c.work} for c in self.per_layer]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NetworkFeatures:
        return cls(name=d["name"], work=dict(d["work"]), layers=int(d["layers"]),
                   layer_types=dict(d.get("layer_types", {})), source=d.get("source", ""),
                   input_shapes=dict(d.get("input_shapes", {})), unknown_types=list(d.get("unknown_types", [])))


def layer_work(layer: NcnnLayer, shapes: Mapping[str, Shape]) -> Work:
    """(class, work) pairs of one ncnn layer given every blob's shape; `[("unknown", 0)]` if not known."""
    if layer.type in NO_WORK:
        return []
    if layer.type in OTHER:
        return [("other", 0.0)]
    handler = LAYER_WORK.get(layer.type)
    if handler is None:
        return [("unknown", 0.0)]
    ins = [shapes.get(b, ()) for b in layer.bottoms]
    outs = [shapes.get(b, ()) for b in layer.tops]
    return handler(layer, ins, outs)


def features_from_layers(name: str, layers: Iterable[NcnnLayer], shapes: Mapping[str, Shape], *,
                         source: str = "ncnn param", inputs: Mapping[str, Shape] | None = None) -> NetworkFeatures:
    """Sum the per-layer work of a graph whose blob shapes are known."""
    work: dict[str, float] = dict.fromkeys(CLASSES, 0.0)
    types: Counter[str] = Counter()
    unknown: list[str] = []
    per_layer = []
    running = 0
    for layer in layers:
        types[layer.type] += 1
        pairs = layer_work(layer, shapes)
        if layer.type not in NO_WORK:
            running += 1
        lw: dict[str, float] = {}
        for cls, amount in pairs:
            if cls == "unknown":
                unknown.append(layer.type)
                continue
            if cls == "other":
                continue
            work[cls] = work.get(cls, 0.0) + amount
            lw[cls] = lw.get(cls, 0.0) + amount
        per_layer.append(LayerCost(layer.type, layer.name, lw))
    return NetworkFeatures(
        name=name, work=work, layers=running, layer_types=dict(types.most_common()), source=source,
        input_shapes={k: list(v) for k, v in (inputs or {}).items()}, unknown_types=sorted(set(unknown)),
        per_layer=per_layer,
    )


def ncnn_features(text: str, name: str, inputs: Mapping[str, Shape] | None = None) -> NetworkFeatures:
    """Features of an ncnn `.param` text (blob shapes from ncnn with zero weights)."""
    layers = parse_ncnn_param(text)
    shapes = ncnn_blob_shapes(text, inputs)
    in_shapes = {layer.tops[0]: shapes[layer.tops[0]] for layer in layers if layer.type == "Input"}
    return features_from_layers(name, layers, shapes, inputs=in_shapes)
