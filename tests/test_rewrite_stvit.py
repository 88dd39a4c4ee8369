"""STViT deploy form: same function as the official model, static export-friendly ops, clean exports."""
from __future__ import annotations

import collections
import functools
import io

import numpy as np
import pytest
import torch
from torch import nn

import edgevit
from edgevit.models.layers import DropPath
from edgevit.models.stvit import MemoryEfficientSwish, STViT, SuperTokenAttention, tiny
from edgevit.rewrite import deploy
from edgevit.rewrite.super_tokens import DeploySuperTokenAttention
from tests import conformance

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

NAMES = ["stvit_small", "stvit_base", "stvit_large"]
# What the deploy graph must not contain: col2im and its ConvTranspose substitute, im2col's Gathers,
# Python ops and control flow, adaptive pooling.
FORBIDDEN = {"Col2Im", "ConvTranspose", "Gather", "GatherElements", "GatherND", "PythonOp", "Loop", "If",
             "Scan", "GlobalAveragePool", "GlobalMaxPool"}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _build(name: str) -> tuple[STViT, nn.Module, dict[str, torch.Tensor]]:
    model = edgevit.create_model(name, checkpoint=conformance.official_state_dict(name)).eval()
    before = _state(model)
    return model, deploy(model), before


_small = functools.cache(lambda: _build("stvit_small"))  # also exported below: build it once


@pytest.fixture(scope="module", params=NAMES)
def deployed(request) -> tuple[str, STViT, nn.Module, dict[str, torch.Tensor]]:
    name = request.param
    return (name, *(_small() if name == "stvit_small" else _build(name)))


@pytest.mark.parametrize("batch", [1, 2])
def test_deploy_form_conforms(deployed, batch):
    name, _, dep, _ = deployed
    with torch.inference_mode():
        logits = dep(conformance.reference_input(name, batch))
    conformance.assert_conforms(name, logits)


def test_input_model_untouched_and_deploy_form_static(deployed):
    name, model, dep, before = deployed
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert sum(isinstance(m, SuperTokenAttention) for m in model.modules()) == sum(model_info_depths(name))
    assert any(isinstance(m, MemoryEfficientSwish) for m in model.modules())

    kinds = collections.Counter(type(m) for m in dep.modules())
    for gone in (SuperTokenAttention, MemoryEfficientSwish, nn.Dropout, DropPath):
        assert kinds[gone] == 0, gone
    # only the stem's BatchNorms remain: each follows a GELU and precedes a padded conv (not foldable exactly)
    assert kinds[nn.BatchNorm2d] == 4
    assert not any(getattr(m, "gamma1", None) is not None for m in dep.modules())
    stas = [m for m in dep.modules() if isinstance(m, DeploySuperTokenAttention)]
    assert [m.resolution for m in stas[:1]] == [(56, 56)] and all(m.use_matrix for m in stas)
    assert dep.edgevit_deploy and not any(p.requires_grad for p in dep.parameters())


def model_info_depths(name: str) -> list[int]:
    return {"stvit_small": [3, 5, 9, 3], "stvit_base": [4, 6, 14, 6], "stvit_large": [4, 7, 19, 8]}[name]


# ---------------------------------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------------------------------


def _ort(model_bytes: bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def _export(model: nn.Module, x: torch.Tensor, dynamo: bool) -> onnx.ModelProto:
    """ONNX with a dynamic batch axis (the example batch is 2: torch.export specialises size-1 dims)."""
    kw: dict = {"input_names": ["input"], "output_names": ["logits"], "dynamo": dynamo}
    if dynamo:
        kw["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    else:
        kw.update(dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=18)
    buf = io.BytesIO()
    onnx_program = torch.onnx.export(model, (x,), buf if not dynamo else None, **kw)
    if dynamo:
        return onnx_program.model_proto
    return onnx.load_from_string(buf.getvalue())


def _check_graph(proto: onnx.ModelProto) -> collections.Counter:
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert not FORBIDDEN & set(ops), FORBIDDEN & set(ops)
    assert not [op for op in ops if "Adaptive" in op]
    inferred = onnx.shape_inference.infer_shapes(proto)
    ranks = {len(v.type.tensor_type.shape.dim) for v in inferred.graph.value_info if v.type.HasField("tensor_type")}
    assert max(ranks) <= 4, "rank-5+ tensors (pnnx/ncnn reject them)"
    return ops


@pytest.fixture(scope="module")
def tiny_pair() -> tuple[STViT, nn.Module]:
    torch.manual_seed(0)
    model = tiny(num_classes=10, img_size=64).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is really exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
    return model, deploy(model)


def test_tiny_deploy_matches_at_odd_sizes_and_iterations():
    """Static padding (72 -> 18x18 and 9x9 maps, super tokens 8 and 4) and unrolled n_iter 2/3."""
    torch.manual_seed(1)
    model = STViT(embed_dim=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), n_iter=(2, 3, 1, 1),
                  projection=64, layerscale=(True, True, True, True), init_values=0.5, num_classes=10,
                  img_size=72).eval()
    x = torch.randn(3, 3, 72, 72)
    with torch.inference_mode():
        ref, out = model(x), deploy(model)(x)
    assert (out - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_slices_path_for_large_grids(monkeypatch):
    """Above MAX_CELLS_FOR_MATRIX cells unfold/fold use shifted slices; same function."""
    from edgevit.rewrite import super_tokens

    monkeypatch.setattr(super_tokens, "MAX_CELLS_FOR_MATRIX", 0)
    torch.manual_seed(2)
    model = tiny(img_size=96).eval()
    dep = deploy(model)
    assert not any(m.use_matrix for m in dep.modules() if isinstance(m, DeploySuperTokenAttention))
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        ref, out = model(x), dep(x)
    assert (out - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_deploy_rejects_other_resolution(tiny_pair):
    _, dep = tiny_pair
    with pytest.raises(ValueError, match="built for"):
        dep(torch.randn(1, 3, 96, 96))


def test_small_torchscript_onnx_conforms():
    """stvit_small deploy form -> ONNX (TorchScript exporter, dynamic batch) -> ORT: within the official
    conformance bound at batch 2 (torch.jit.trace is checked on tiny below, to stay fast)."""
    name = "stvit_small"
    _, dep, _ = _small()
    x = conformance.reference_input(name, 2)
    proto = _export(dep, x, dynamo=False)
    _check_graph(proto)
    out = _ort(proto.SerializeToString()).run(None, {"input": x.numpy()})[0]
    conformance.assert_conforms(name, out)


def test_tiny_exports_dynamo_and_beats_naive(tiny_pair):
    model, dep = tiny_pair
    x2, x3 = torch.randn(2, 3, 64, 64), torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        ref3 = dep(x3)
    tol = 1e-4 * max(1.0, ref3.abs().max().item())

    deploy_proto = _export(dep, x2, dynamo=True)
    deploy_ops = _check_graph(deploy_proto)
    sess = _ort(deploy_proto.SerializeToString())
    assert sess.get_inputs()[0].shape[0] == "batch"
    assert np.abs(sess.run(None, {"input": x3.numpy()})[0] - ref3.numpy()).max() <= tol

    ts_ops = _check_graph(_export(dep, x2, dynamo=False))
    assert ts_ops["LayerNormalization"] == deploy_ops["LayerNormalization"] == 4  # one per block
    with torch.inference_mode():
        traced = torch.jit.trace(dep, x2)
        assert (traced(x3) - ref3).abs().max().item() <= tol

    # The naive path: the train form's TorchScript export fails outright (adaptive pooling with
    # shape-derived sizes); its dynamo export works but carries Col2Im and im2col Gathers.
    with pytest.raises(Exception, match="adaptive pool"):
        _export(model, x2, dynamo=False)
    naive = _export(model, x2, dynamo=True)
    naive_ops = collections.Counter(n.op_type for n in naive.graph.node)
    assert naive_ops["Col2Im"] > 0 and naive_ops["Gather"] > 0
    assert len(deploy_proto.graph.node) < len(naive.graph.node), (len(deploy_proto.graph.node), len(naive.graph.node))
