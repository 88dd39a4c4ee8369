"""CAS-ViT deploy form: same function as the official model, static graph, exports with every exporter."""
from __future__ import annotations

import warnings
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgevit
from edgevit.models.casvit import tiny
from edgevit.models.layers import DropPath
from edgevit.rewrite import deploy
from tests.conformance import assert_conforms, bound, official_state_dict, reference_input

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

NAMES = ["cas_vit_xs", "cas_vit_s", "cas_vit_m", "cas_vit_t"]
FORBIDDEN_OPS = {"BatchNormalization", "ConvTranspose", "PythonOp", "Loop", "If", "Split", "Slice", "Shape"}


@cache
def _official(name: str) -> nn.Module:
    return edgevit.create_model(name, checkpoint=official_state_dict(name)).eval()


@cache
def _deployed(name: str) -> nn.Module:
    return deploy(_official(name))


@pytest.mark.parametrize("name", NAMES)
def test_deploy_form_conforms(name):
    model = _deployed(name)
    with torch.no_grad():
        for batch in (1, 2):
            assert_conforms(name, model(reference_input(name, batch)))


def test_deploy_form_structure_and_input_untouched():
    src = _official("cas_vit_xs")
    before = {k: v.clone() for k, v in src.state_dict().items()}
    types_before = [type(m) for m in src.modules()]
    dep = deploy(src)
    assert [type(m) for m in src.modules()] == types_before and src.dist_head is not None
    after = src.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    kinds = {type(m) for m in dep.modules()}
    assert not kinds & {nn.BatchNorm2d, nn.BatchNorm1d, nn.Dropout, DropPath}
    assert dep.dist_head is None and isinstance(dep.head, nn.Linear)
    assert not any(p.requires_grad for p in dep.parameters())


def test_deploy_of_trained_tiny_matches():
    """Non-trivial BN statistics and drop-path (trained a few steps) fold exactly; features-only works too."""
    torch.manual_seed(0)
    model = tiny(num_classes=10, img_size=64)
    model.stages[1].blocks[0].drop_path = DropPath(0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,))
    for _ in range(3):
        loss = nn.functional.cross_entropy(model.train()(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        ref = model(x)
        assert (deploy(model)(x) - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item())
    features = tiny(num_classes=0).eval()
    with torch.no_grad():
        z = torch.randn(1, 3, 96, 96)
        torch.testing.assert_close(deploy(features)(z), features(z), rtol=1e-5, atol=1e-5)


# --- exports of the deploy form of cas_vit_xs --------------------------------------------------------------------


def _export(model: nn.Module, path: Path, dynamo: bool) -> Path:
    x = reference_input("cas_vit_xs", 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    return path


def _constant_names(graph) -> set[str]:  # noqa: ANN001
    names = {init.name for init in graph.initializer}
    return names | {o for n in graph.node if n.op_type == "Constant" for o in n.output}


def _check_graph(path: Path) -> int:
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    graph = model.graph
    ops = Counter(n.op_type for n in graph.node)
    assert not FORBIDDEN_OPS & set(ops), ops
    consts = _constant_names(graph)
    gathers = [n.name for n in graph.node if n.op_type == "Gather" and n.input[1] in consts]
    assert not gathers, f"Gather on constant indices: {gathers}"
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param, "batch axis should be dynamic"
    return len(graph.node)


def _ort_matches(path: Path) -> None:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # 3: a batch size the export never saw
        x = reference_input("cas_vit_xs", batch).numpy()
        assert_conforms("cas_vit_xs", sess.run(None, {"x": x})[0])


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_deploy_exports_to_onnx(dynamo, tmp_path):
    n_deploy = _check_graph(_export(_deployed("cas_vit_xs"), tmp_path / "deploy.onnx", dynamo))
    _ort_matches(tmp_path / "deploy.onnx")
    if not dynamo:  # the naive TorchScript export of the train form: shape arithmetic and BatchNorms
        naive = onnx.load(str(_export(_official("cas_vit_xs"), tmp_path / "naive.onnx", dynamo=False)))
        naive_ops = Counter(n.op_type for n in naive.graph.node)
        assert naive_ops["BatchNormalization"] > 0 and naive_ops["Gather"] > 0
        assert n_deploy < len(naive.graph.node)


def test_deploy_traces_with_torchscript():
    model = _deployed("cas_vit_xs")
    with torch.no_grad():
        traced = torch.jit.trace(model, reference_input("cas_vit_xs", 2), check_trace=False)  # checked below
        for batch in (1, 3):
            x = reference_input("cas_vit_xs", batch)
            out = traced(x)
            assert_conforms("cas_vit_xs", out)
            np.testing.assert_allclose(out.numpy(), model(x).numpy(), atol=bound("cas_vit_xs"))
