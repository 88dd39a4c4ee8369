"""Deploy form of FcaFormer / CabViT: same logits as the official model, static exportable graph."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from edgevit.models import cabvit, fcaformer
from edgevit.models.layers import DropPath
from edgevit.rewrite import deploy
from edgevit.rewrite.cross_tokens import StaticCrossAttention
from tests.conformance import assert_conforms, reference_input
from tests.fcaformer_official import FIXTURES, official_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BLOCKED = ("ConvTranspose", "PythonOp", "Loop", "If", "Scan")
DEEP = dict(embed_dims=(8, 8, 16, 16), depths=(1, 1, 14, 1), num_heads=(2, 2), img_size=64)  # window binds
SHIFTED = ("running_mean", "cross_bias", "attention_biases", "gamma", "gamma_1", "gamma_2")
TRAIN_ONLY = (fcaformer.CrossAttention, fcaformer.ConvNorm, nn.BatchNorm2d, DropPath, nn.Dropout)


@pytest.mark.parametrize("name", FIXTURES)
def test_deploy_conforms_and_leaves_input_untouched(name):
    model = official_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dep = deploy(model)
    with torch.no_grad():
        assert_conforms(name, dep(reference_input(name, 1)))
        assert_conforms(name, dep(reference_input(name, 2)))
    assert not any(isinstance(m, TRAIN_ONLY) for m in dep.modules())
    assert any(isinstance(m, StaticCrossAttention) for m in dep.modules())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, fcaformer.CrossAttention) for m in model.modules())


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics, layer scales, cross-token scales and biases (init leaves them trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype != torch.float32:
                continue
            if name.endswith(("running_var", "cross_scale")):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(SHIFTED):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return model.eval()


def _max_err(a: torch.Tensor | np.ndarray, b: torch.Tensor) -> tuple[float, float]:
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double()
    return float((a - b.double()).abs().max()), 1e-4 * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("build", [
    lambda: fcaformer.PlainFcaFormer(img_size=64, embed_dim=32, depth=4, num_heads=2),  # class token
    lambda: fcaformer.FcaFormer(**DEEP),
    lambda: fcaformer.FcaFormer(**DEEP, window=None),
], ids=["plain_fcaformer", "window12_depth14", "unbounded_depth14"])
def test_deploy_same_function_without_fixture(build):
    model = _randomise(build())
    size = model.img_size[0]
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        err, bound = _max_err(deploy(model)(x), model(x))
    assert err <= bound, (err, bound)


def _graph_problems(proto) -> list[str]:
    """Ops that block or slow edge runtimes: constant-table gathers, ConvTranspose, PythonOp, control flow."""
    consts = {i.name for i in proto.graph.initializer}
    consts |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    problems = []
    for n in proto.graph.node:
        if n.op_type.startswith("Gather") and n.input[0] in consts:
            problems.append(f"{n.op_type} on constant {n.input[0]}")
        if n.op_type in BLOCKED or n.domain not in ("", "ai.onnx"):
            problems.append(f"{n.domain}::{n.op_type}")
    for vi in [*proto.graph.value_info, *proto.graph.output]:
        if len(vi.type.tensor_type.shape.dim) > 4:
            problems.append(f"rank-{len(vi.type.tensor_type.shape.dim)} tensor {vi.name}")
    return problems


def _export(model: nn.Module, x: torch.Tensor, dynamo: bool) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=64)
            prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["x"], output_names=["y"],
                                     verbose=False, dynamic_shapes=({0: batch},))
            return prog.model_proto.SerializeToString()
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"],
                          opset_version=18, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return buf.getvalue()


def _ort(data: bytes, x: torch.Tensor) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize("family", [fcaformer, cabvit], ids=["fcaformer_tiny", "cabvit_p_tiny"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript_exporter", "dynamo_exporter"])
def test_deploy_exports_and_runs_in_ort(family, dynamo):
    torch.manual_seed(0)
    model = _randomise(family.tiny(num_classes=10, img_size=64))
    dep = deploy(model)
    x1, x3 = torch.randn(1, 3, 64, 64), torch.randn(3, 3, 64, 64)
    data = _export(dep, x1, dynamo)
    proto = onnx.shape_inference.infer_shapes(onnx.load_from_string(data))
    assert _graph_problems(proto) == []
    with torch.no_grad():
        for x in (x1, x3):  # batch stays dynamic: nothing traced as a constant
            err, bound = _max_err(_ort(data, x), model(x))
            assert err <= bound, (err, bound)
    if not dynamo:  # same exporter, train form: the deploy graph is smaller
        naive = onnx.load_from_string(_export(model, x1, dynamo=False))
        assert len(proto.graph.node) < len(naive.graph.node), (len(proto.graph.node), len(naive.graph.node))


@pytest.mark.parametrize("family", [fcaformer, cabvit], ids=["fcaformer_tiny", "cabvit_p_tiny"])
def test_deploy_traces_with_dynamic_batch(family):
    model = _randomise(family.tiny(num_classes=10, img_size=64))
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)  # no shape turned into a constant
        traced = torch.jit.trace(deploy(model), torch.randn(2, 3, 64, 64))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        err, bound = _max_err(traced(x), model(x))
    assert err <= bound, (err, bound)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcaformer_l1", "cabvit_p_l0"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript_exporter", "dynamo_exporter"])
def test_official_deploy_onnx_conforms(name, dynamo):
    """Full-size export of the official checkpoint; ORT logits within the conformance bound (slow)."""
    dep = deploy(official_model(name))
    data = _export(dep, reference_input(name, 1), dynamo)
    assert _graph_problems(onnx.load_from_string(data)) == []
    assert_conforms(name, _ort(data, reference_input(name, 2)))
