"""ExecuTorch target: every family's deploy form lowers to an XNNPACK-delegated .pte that matches PyTorch
(fp32); PT2E int8 calibrated on real images keeps cosine/top-1; the sidecar counts delegated nodes."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("executorch")

from edgevit.backends.executorch.export import export_executorch, inspect_pte  # noqa: E402
from edgevit.backends import ExportRequest, get_backend  # noqa: E402
from edgevit.rewrite import deploy  # noqa: E402
from edgevit.backends import open_runner  # noqa: E402
from edgevit.verify import compare, judge  # noqa: E402

# XNNPACK lowering is slow (CPU seconds on an idle core, measured: fcaformer ~70, stvit ~45, casvit ~15,
# cabvit ~6, the int8 pipeline ~70): the two heaviest families run with `-m slow` so that the
# default run of this file stays near 1.5 min of CPU.
FAMILIES = [
    pytest.param("fcaformer", marks=pytest.mark.slow),
    "cabvit",
    "casvit",
    pytest.param("stvit", marks=pytest.mark.slow),
]


def _tiny(family: str) -> nn.Module:
    torch.manual_seed(0)
    return deploy(importlib.import_module(f"edgevit.models.{family}").tiny(num_classes=10, img_size=64))


@pytest.mark.parametrize("family", FAMILIES)
def test_family_fp32_matches_pytorch(family: str, tmp_out: Path) -> None:
    model = _tiny(family)
    x = torch.randn(3, 3, 64, 64)
    req = ExportRequest(model_name=family, model=model, example=x[:1], output=tmp_out / f"{family}.pte", img_size=64)
    res = export_executorch(req)
    md = res.metadata
    assert md["delegated_nodes"] > 0 and md["delegated_subgraphs"] >= 1
    assert md["non_delegated_nodes"] == sum(md["non_delegated_ops"].values())
    with torch.no_grad():
        ref = model(x).numpy()
    with open_runner("executorch", res.artifact, threads=2) as runner:
        out = runner.infer(x.numpy())  # batch-1 program: the runner feeds rows
    rep = compare(ref, out)
    assert not judge(rep, "fp32", judge_top1=False), (family, rep)
    info = inspect_pte(res.artifact)
    assert info["delegate_calls"] == md["delegated_subgraphs"]
    assert info["backends"] == {"XnnpackBackend": md["delegated_subgraphs"]}
    assert info["inputs"] == {"input0": [1, 3, 64, 64]}


def test_targets_row() -> None:
    t = get_backend("executorch")
    assert t.suffix == ".pte" and t.runtime.key == "executorch" and "int8" in t.precisions
    assert "XNNPACKQuantizer" in t.int8


def test_pipeline_int8_and_sidecar(tmp_out: Path) -> None:
    """int8 through edgevit.export: calibrated on the CalibrationSet, verified by cosine/top-1, the
    sidecar carries delegated vs not delegated node counts."""
    from tests import _toy  # noqa: F401  registers toy_vit
    from edgevit.export import export

    out = tmp_out / "toy_int8.pte"
    with pytest.warns(Warning):
        rep = export("toy_vit", target="executorch", precision="int8", output=out, img_size=64)
    assert rep.verification is not None and rep.verification.passed, rep.verification
    side = json.loads((tmp_out / "toy_int8.pte.json").read_text())
    exp = side["export"]
    assert exp["calibration_images"] == side["calibration"]["calibration_images"] > 0
    assert exp["delegated_nodes"] > 0 and "non_delegated_nodes" in exp
    # int8 really reached XNNPACK: quantize/dequantize nodes are inside the delegates
    assert any("quantize" in op for op in exp["delegated_ops"])
    cos = side["verification"]["outputs"][0]["cosine"]
    assert cos >= 0.98


def test_one_calibration_serves_every_variant() -> None:
    """A variant's observers take the shared calibration's statistics (no calibration pass of its own
    unless a shared observer group changed), and its scales equal a fresh calibration of that variant."""
    from tests import _toy  # noqa: F401  registers toy_vit
    from edgevit.backends.executorch.quantize import Calibration, candidates, capture, quantize_variant
    from edgevit.models import build_reference

    torch.manual_seed(0)
    model = deploy(build_reference("toy_vit", img_size=64)).eval()
    example = torch.zeros(1, 3, 64, 64)
    calib = [torch.randn(1, 3, 64, 64) for _ in range(6)]
    captured = capture(model, example)
    cands = candidates(captured)
    kinds = {k for _, k, _ in cands}
    assert {"linear", "add"} <= kinds, kinds
    shared = Calibration(captured, example, calib)
    variants = [frozenset(), frozenset({cands[0][0]}), frozenset(n for n, k, _ in cands if k == "add"),
                frozenset(n for n, k, _ in cands if k == "linear")]
    for float_nodes in variants:
        got, want = _qparams(shared.variant(float_nodes)), _qparams(quantize_variant(captured, example, calib,
                                                                                      float_nodes)[0])
        assert got.keys() == want.keys() and len(got) > 0
        for name, (scale, zero) in want.items():
            assert got[name][1] == zero and got[name][0] == pytest.approx(scale, rel=1e-3), name
    assert shared.recalibrated < len(variants)


def _qparams(gm) -> dict[str, tuple[float, int]]:
    """Every per-tensor quantize node's (scale, zero point), by the tensor it quantizes."""
    out = {}
    for n in gm.graph.nodes:
        if n.op == "call_function" and "quantize_per_tensor" in str(n.target) and "dequantize" not in str(n.target):
            out[n.args[0].name] = (float(n.args[1]), int(n.args[2]))
    return out
