"""Cost features of an ONNX graph, in the same kernel classes as the ncnn features (`features`).

Shapes come from ONNX shape inference (edgevit's exports are static, batch 1). Differences from ncnn
that matter for cost: Reshape/Flatten/Squeeze/Unsqueeze are free in onnxruntime (a view), so they do
no work here; a MatMul whose second input is a weight is a linear layer (Gemm class), one between two
activations is attention-like (MatMul class). QDQ int8 graphs are not modelled (host int8 is not
calibrated).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgevit.errors import ConfigError, UnavailableError
from edgevit.predict.features import CLASSES, LayerCost, NetworkFeatures

OnnxShape = tuple[int, ...]
Work = list[tuple[str, float]]
Handler = Callable[[Any, list[OnnxShape], list[OnnxShape], "_Graph"], Work]
ONNX_WORK: dict[str, Handler] = {}
FREE = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant", "Dropout",
                  "ConstantOfShape", "Cast", "Size", "Range"})


def _register(*ops: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for op in ops:
            if op in ONNX_WORK:
                raise ValueError(f"ONNX op {op} registered twice")
            ONNX_WORK[op] = fn
        return fn

    return deco


class _Graph:
    """Shapes of every tensor and which tensors are weights (initializers or Constant outputs)."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        g = model.graph
        self.shapes: dict[str, OnnxShape] = {}
        self.constants: dict[str, OnnxShape] = {}
        for init in g.initializer:
            self.constants[init.name] = tuple(int(d) for d in init.dims)
        for node in g.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.constants[node.output[0]] = tuple(numpy_helper.to_array(attr.t).shape)
        for vi in [*g.input, *g.value_info, *g.output]:
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
        self.shapes.update(self.constants)

    def shape(self, name: str) -> OnnxShape:
        return self.shapes.get(name, ())


def _elems(shape: OnnxShape) -> float:
    return float(math.prod(shape)) if shape else 0.0


def _m(x: float) -> float:
    return x / 1e6


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _io(ins: list[OnnxShape], outs: list[OnnxShape]) -> float:
    return _m(sum(_elems(s) for s in ins) + sum(_elems(s) for s in outs))


@_register("Conv")
def _conv(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    w = ins[1]
    out = outs[0]
    if len(w) < 3 or not out:
        return []
    group = int(_attr(node, "group", 1))
    k = tuple(w[2:])
    strides = tuple(_attr(node, "strides", [1] * len(k)))
    dil = tuple(_attr(node, "dilations", [1] * len(k)))
    macs = _m(math.prod(out[2:]) * math.prod(w))
    cin = ins[0][1] if len(ins[0]) > 1 else 0
    if group > 1 and group == w[0] and group == cin:
        cls, io = ("dwconv3" if max(k) <= 3 else "dwconvk"), "dw_io"
    elif group > 1:
        cls, io = "conv_group", "conv_io"
    elif all(x == 1 for x in k):
        cls, io = "conv1x1", "conv_io"
    elif k == (3, 3) and all(d == 1 for d in dil):
        cls, io = ("conv3x3s1" if all(s == 1 for s in strides) else "conv3x3s2"), "conv_io"
    else:
        cls, io = "convkxk", "conv_io"
    return [(cls, macs), (io, _io(ins[:1], outs)), ("weights", _m(_elems(w)))]


@_register("ConvTranspose")
def _deconv(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    w = ins[1]
    return [("deconv", _m(math.prod(ins[0][2:]) * math.prod(w))), ("weights", _m(_elems(w)))]


def _linear(rows: float, k: int, n: int, weight: bool, ins: list[OnnxShape], outs: list[OnnxShape]) -> Work:
    macs = _m(rows * k * n)
    if not weight:
        return [("matmul", macs)]
    cls = "fc" if rows == 1 else "gemm"
    return [(cls, macs), ("weights", _m(k * n)), ("conv_io", _io(ins[:1], outs))]


@_register("Gemm")
def _gemm(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    a, b, out = ins[0], ins[1], (outs[0] if outs else [])
    trans_a, trans_b = int(_attr(node, "transA", 0)), int(_attr(node, "transB", 0))
    if len(b) != 2:
        raise ConfigError(f"Gemm {node.name or node.output[0]!r}: its weight's shape is unknown, so its work cannot be counted")
    k, n = (b[1], b[0]) if trans_b else (b[0], b[1])
    if len(a) == 2:  # A's shape known: M from it
        m = a[1] if trans_a else a[0]
    elif len(out) == 2:  # shape inference lost A (e.g. after a ReduceMean of unknown rank): M from the output
        m = out[0]
    else:
        m = 1  # batch 1, one row: what a Gemm after a global pool computes
    return _linear(m, k, n, node.input[1] in g.constants, ins, outs)


@_register("MatMul")
def _matmul(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    a, b, out = ins[0], ins[1], outs[0]
    if not a or not b or not out:
        return []
    k = a[-1]
    n = out[-1]
    rows = _elems(out) / n
    return _linear(rows, k, n, node.input[1] in g.constants, ins, outs)


@_register("Add", "Sub", "Mul", "Div", "Relu", "Clip", "HardSigmoid", "HardSwish", "BatchNormalization", "PRelu",
           "LeakyRelu", "Max", "Min", "Neg", "Abs", "Sqrt", "Reciprocal", "Where", "Equal", "Less", "Greater",
           "Not", "And", "Or", "Floor", "Ceil", "Round", "Sign", "QuantizeLinear", "DequantizeLinear")
def _eltwise(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    if all(name in g.constants for name in node.input if name):
        return []  # folded constants
    return [("eltwise", _m(sum(_elems(s) for s in outs)))]


@_register("Sigmoid", "Tanh", "Gelu", "Erf", "Exp", "Log", "Softplus", "Mish", "Elu", "Selu", "Pow", "Sin", "Cos")
def _transcend(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    return [("transcend", _m(sum(_elems(s) for s in outs)))]


@_register("Softmax", "LogSoftmax")
def _softmax(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    return [("softmax", _m(_elems(outs[0])))]


@_register("LayerNormalization", "GroupNormalization", "InstanceNormalization", "LpNormalization",
           "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ArgMax", "CumSum",
           "SimplifiedLayerNormalization", "SkipLayerNormalization")
def _norm(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    return [("norm", _m(_elems(ins[0])))]


@_register("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool")
def _pool(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    return [("pool", _m(_elems(ins[0])))]


@_register("Transpose", "Concat", "Split", "Slice", "Gather", "Pad", "Resize", "Expand", "Tile", "DepthToSpace",
           "SpaceToDepth", "GatherElements", "ScatterND", "Upsample")
def _layout(node: Any, ins: list[OnnxShape], outs: list[OnnxShape], g: _Graph) -> Work:
    return [("layout", _m(sum(_elems(s) for s in outs)))]


def onnx_features(path: str | Path, name: str | None = None) -> NetworkFeatures:
    """Features of an ONNX file (shapes by ONNX shape inference; every shape must be static)."""
    try:
        import onnx
    except ImportError as e:
        raise UnavailableError("features of an ONNX graph need onnx: pip install 'edgevit[onnx]'") from e
    p = Path(path)
    try:
        model = onnx.load(str(p), load_external_data=False)
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)  # resolves Shape->Concat->Reshape
    except Exception as exc:  # onnx raises its own error types for unreadable files
        raise ConfigError(f"cannot read ONNX graph {p}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    g = _Graph(model)
    work: dict[str, float] = dict.fromkeys(CLASSES, 0.0)
    types: Counter[str] = Counter()
    unknown: list[str] = []
    per_layer = []
    running = 0
    static = set(g.constants)  # constants and shape arithmetic (Shape -> Slice -> Concat) cost nothing
    for node in model.graph.node:
        types[node.op_type] += 1
        if node.op_type == "Shape" or all(n in static for n in node.input if n):
            static.update(node.output)
            continue
        if node.op_type in FREE:
            continue
        handler = ONNX_WORK.get(node.op_type)
        if handler is None:
            unknown.append(node.op_type)
            running += 1
            continue
        ins = [g.shape(n) for n in node.input if n]
        outs = [g.shape(n) for n in node.output if n]
        pairs = handler(node, ins, outs, g)
        if not pairs:
            continue
        running += 1
        lw: dict[str, float] = {}
        for cls, amount in pairs:
            work[cls] = work.get(cls, 0.0) + amount
            lw[cls] = lw.get(cls, 0.0) + amount
        per_layer.append(LayerCost(node.op_type, node.name, lw))
    inputs = {i.name: list(g.shape(i.name)) for i in model.graph.input if i.name not in g.constants}
    return NetworkFeatures(name=name or p.stem, work=work, layers=running, layer_types=dict(types.most_common()),
                           source="onnx", input_shapes=inputs, unknown_types=sorted(set(unknown)),
                           per_layer=per_layer)
