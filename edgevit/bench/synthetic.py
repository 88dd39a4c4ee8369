"""Synthetic ONNX artifacts with a known amount of work: the gate's reference case and controlled slowdowns.

`with_extra_work(model, blocks=k)` is a real model with a chain of k identity 1x1 convolutions in front
of it: the same outputs, k times a small fixed amount of extra work (`benchmarks/gate_power.py` sizes k
by measurement so the chain costs 10% or 20% of the model).

`conv_stack(layers=L)` is a stem conv plus L identical 3x3 convolutions (32 channels, 32x32 maps, ReLU):
its cost grows linearly with L, so `layers = round(L0 * (1 + s))` is an artifact that is `s` slower by
construction, with the same loading and input path. The reference case `@reference` is one such stack:
it depends on nothing in edgevit's models or exporters, so normalising by it measures the *machine*,
never the code under test (normalising by a model of the suite would cancel a regression that hits all
models at once).
"""
from __future__ import annotations

from pathlib import Path

REFERENCE_NAME = "@reference"
CHANNELS = 32
SIZE = 32
# The reference is as long as a small real model (~0.9 GMACs, tens of ms on one core): on a loaded
# machine a 3 ms inference either fits in one scheduler slice or waits several, so short references
# measured 4x spreads (median/min) here and made the normalised gate blind; long ones average out.
REFERENCE_LAYERS = 8
REFERENCE_CHANNELS = 64
REFERENCE_SIZE = 56


def conv_stack(path: Path, layers: int = REFERENCE_LAYERS, *, channels: int = CHANNELS, size: int = SIZE,
               seed: int = 0) -> Path:
    """Write a deterministic (same bytes for the same arguments) Conv/ReLU stack to `path`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev = "input"
    for i in range(layers + 1):
        cin = 3 if i == 0 else channels
        w = (rng.standard_normal((channels, cin, 3, 3)) * (2.0 / (9 * cin)) ** 0.5).astype(np.float32)
        b = np.zeros(channels, np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["logits"]))
    graph = helper.make_graph(
        nodes, f"conv_stack_{layers}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, channels])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgevit.bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    from edgevit.files import atomic_write_bytes

    return atomic_write_bytes(path, model.SerializeToString())


def conv_stack_macs(layers: int, *, channels: int = CHANNELS, size: int = SIZE) -> int:
    return size * size * channels * 9 * (3 + layers * channels)


def reference_artifact(cache_dir: Path) -> Path:
    """The reference case's artifact, built once per cache directory."""
    name = f"conv_stack_{REFERENCE_LAYERS}x{REFERENCE_CHANNELS}c{REFERENCE_SIZE}px.onnx"
    path = Path(cache_dir) / "reference" / name
    if not path.exists():
        conv_stack(path, REFERENCE_LAYERS, channels=REFERENCE_CHANNELS, size=REFERENCE_SIZE)
    return path


def with_extra_work(src: Path, dst: Path, blocks: int) -> Path:
    """`src` (an ONNX model with one NCHW float input) with `blocks` identity 1x1 Convs before its graph:
    outputs unchanged, work added in the graph itself (never a scaled timing)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inp = graph.input[0]
    channels = inp.type.tensor_type.shape.dim[1].dim_value
    if channels <= 0:
        raise ValueError(f"{src}: the input's channel dimension must be static")
    eye = numpy_helper.from_array(np.eye(channels, dtype=np.float32).reshape(channels, channels, 1, 1),
                                  "edgevit_extra_w")
    prev, nodes = inp.name, []
    for i in range(blocks):
        out = f"edgevit_extra_{i}"
        nodes.append(helper.make_node("Conv", [prev, eye.name], [out], name=f"edgevit_extra_conv_{i}"))
        prev = out
    if blocks:
        for node in graph.node:  # the original graph now reads the chain's output
            node.input[:] = [prev if x == inp.name else x for x in node.input]
        graph.initializer.append(eye)
        rest = list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes + rest)
    onnx.checker.check_model(model)
    from edgevit.files import atomic_write_bytes

    return atomic_write_bytes(dst, model.SerializeToString())
