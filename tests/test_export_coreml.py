"""Core ML target: every family's tiny() converts to an ML program whose spec, MIL ops (for the
deployment target), I/O and preprocessing metadata are right; int8 by weights and W8A8; prediction
only on macOS (skips elsewhere with the runtime's reason); CLI round trip export -> verify."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app
from edgevit.errors import ConfigError
from edgevit.backends import ExportRequest, get_backend
from edgevit.backends import get_runtime
from tests._families import FAMILIES, IMG, MEAN, STD, images, reference, tiny_deployed

pytest.importorskip("coremltools", reason="coremltools is not installed: pip install 'edgevit[coreml]'")

from edgevit.backends.coreml.export import check_mlpackage, inspect_mlpackage, op_supported  # noqa: E402

TARGET = get_backend("coreml")
COREML_RUNTIME = get_runtime("coreml").probe()


def _request(model: nn.Module, out: Path, precision: str, **kw: object) -> ExportRequest:
    x = torch.from_numpy(images(1))
    return ExportRequest(model_name="m", model=model, example=x, output=out, precision=precision, img_size=IMG,
                         mean=MEAN, std=STD, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fp16_packages(tmp_path_factory):
    """Each family's tiny() converted once (fp16, the target's default)."""
    root = tmp_path_factory.mktemp("coreml")
    out = {}
    for fam in FAMILIES:
        model = tiny_deployed(fam)
        req = _request(model, root / f"{fam}.mlpackage", "fp16")
        out[fam] = (req, TARGET.export(req), model)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_family_fp16_package_passes_static_checks(family, fp16_packages):
    req, res, _ = fp16_packages[family]
    assert res.artifact.is_dir() and (res.artifact / "Manifest.json").is_file()
    rep = inspect_mlpackage(res.artifact)
    assert check_mlpackage(rep, req) == []
    assert rep["unsupported_ops"] == [] and rep["mil_reload"] == "ok"
    assert rep["deployment_target"] == "iOS16" and rep["opset"] == "CoreML6"
    assert rep["inputs"] == {"input": [1, 3, IMG, IMG]} and rep["outputs"] == {"logits": [1, 10]}
    assert rep["io"]["inputs"][0]["dtype"] == "FLOAT32" and "std" in rep["io"]["inputs"][0]["description"]
    md = rep["metadata"]
    assert md["edgevit.precision"] == "fp16" and md["edgevit.img_size"] == str(IMG)
    assert [float(v) for v in md["edgevit.mean"].split(",")] == pytest.approx(MEAN)
    assert "cast" in rep["op_histogram"]  # fp16 compute behind float32 I/O
    assert res.metadata["static_checks"]["predicted_here"] is False  # prediction is the macOS-only test below
    assert res.metadata["compute_precision"] == "fp16"


def test_op_support_table_is_version_aware():
    # constexpr_affine_dequantize (int8 weights) arrived with iOS16 (spec 7); quantize (W8A8) with iOS17
    assert op_supported("conv", 6) and op_supported("constexpr_affine_dequantize", 7)
    assert not op_supported("constexpr_affine_dequantize", 6) and not op_supported("quantize", 7)
    assert not op_supported("no_such_op", 9)


def test_static_check_catches_wrong_preprocessing(fp16_packages):
    req, res, _ = fp16_packages["cabvit"]
    wrong = _request(req.model, req.output, "fp16")
    wrong.mean = (0.5, 0.5, 0.5)
    problems = check_mlpackage(inspect_mlpackage(res.artifact), wrong)
    assert len(problems) == 1 and "edgevit.mean" in problems[0]


def test_fp32_on_request(tmp_path):
    res = TARGET.export(_request(tiny_deployed("cabvit"), tmp_path / "c.mlpackage", "fp32"))
    rep = inspect_mlpackage(res.artifact)
    assert res.metadata["compute_precision"] == "fp32" and "cast" not in rep["op_histogram"]
    assert rep["unsupported_ops"] == []


def test_int8_weights_only(tmp_path):
    req = _request(tiny_deployed("fcaformer"), tmp_path / "f.mlpackage", "int8", options={"coreml_int8": "w8"})
    res = TARGET.export(req)
    rep = inspect_mlpackage(res.artifact)
    assert res.metadata["int8_mode"] == "w8" and res.metadata["activation_quantization"] is False
    assert rep["op_histogram"].get("constexpr_affine_dequantize", 0) > 0
    assert rep["unsupported_ops"] == [] and rep["metadata"]["edgevit.int8"] == "w8"


class _Small(nn.Module):
    """Conv + LayerNorm + Linear: the op mix of the families, small enough to calibrate in a second."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 4, 1)
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).flatten(2).transpose(1, 2)
        return self.head(self.fc(self.norm(x)).relu().mean(1))


def _calib():
    from edgevit.quantize.data import from_embedded

    return from_embedded(img_size=IMG, mean=MEAN, std=STD, samples=8, holdout=4)


def test_int8_w8a8_calibrated_on_images(tmp_path):
    torch.manual_seed(0)
    req = _request(_Small().eval(), tmp_path / "s.mlpackage", "int8", calib=_calib(), options={"coreml_int8": "w8a8"})
    res = TARGET.export(req)
    rep = inspect_mlpackage(res.artifact)
    assert res.metadata["int8_mode"] == "w8a8" and res.metadata["activation_quantization"] is True
    assert rep["deployment_target"] == "iOS17" and rep["unsupported_ops"] == []
    assert rep["op_histogram"].get("quantize", 0) > 0 and rep["op_histogram"].get("dequantize", 0) > 0
    sim = res.metadata["simulated_vs_fp32"]
    # a random 10-class head on mean-pooled features is quant-noise-sensitive; garbage would be ~0
    assert sim["cosine_min"] > 0.8 and sim["where"] == "PyTorch fake-quant"
    assert res.metadata["calibration"]["calibration_images"] == 8


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_int8_auto_reports_w8a8_or_why_not(family, tmp_path):
    """W8A8 converts for CAS-ViT; the others fall back to weight-only with the reason recorded."""
    req = _request(tiny_deployed(family), tmp_path / f"{family}.mlpackage", "int8", calib=_calib())
    res = TARGET.export(req)
    assert res.metadata["int8_mode"] in ("w8a8", "w8")
    if res.metadata["int8_mode"] == "w8":
        assert "fell back to weight-only" in res.metadata["w8a8_fallback"]
    assert inspect_mlpackage(res.artifact)["unsupported_ops"] == []


def test_w8a8_without_images_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="calibration images"):
        TARGET.export(_request(_Small().eval(), tmp_path / "s.mlpackage", "int8", options={"coreml_int8": "w8a8"}))
    assert not (tmp_path / "s.mlpackage").exists()


def test_unknown_deployment_target_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="deployment target"):
        TARGET.export(_request(_Small().eval(), tmp_path / "s.mlpackage", "fp16",
                                 options={"deployment_target": "iOS99"}))
    assert not (tmp_path / "s.mlpackage").exists()


@pytest.mark.skipif(not COREML_RUNTIME.available, reason=COREML_RUNTIME.reason)
@pytest.mark.parametrize("family", FAMILIES)
def test_family_predicts_like_pytorch_on_macos(family, fp16_packages):  # pragma: no cover - macOS only
    from edgevit.backends import open_runner

    _, res, model = fp16_packages[family]
    x = images(4)
    ref = reference(model, x)
    with open_runner("coreml", res.artifact) as r:
        got = np.concatenate([r.infer(x[i : i + 1]) for i in range(len(x))])
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    assert cos.min() > 0.999


def test_cli_round_trip_export_then_verify(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["export", "toy_vit", "--target", "coreml", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    art = tmp_path / "toy_vit_fp16.mlpackage"  # fp16 is Core ML's default precision
    side = json.loads((tmp_path / "toy_vit_fp16.mlpackage.json").read_text())
    assert art.is_dir() and side["precision"] == "fp16" and side["target"] == "coreml"
    assert side["export"]["static_checks"]["ops_supported_for_target"] is True
    ver = side["verification"]
    assert ver["inspection"]["unsupported_ops"] == [] and ver["inspection"]["mil_reload"] == "ok"
    if not COREML_RUNTIME.available:
        assert ver["executed"] is False and "macOS" in ver["reason"]
    res = runner.invoke(app, ["verify", str(art)])
    assert res.exit_code == 0, res.output
    assert ("macOS" in res.output) or ("passed" in res.output)
    assert not [p for p in tmp_path.iterdir() if "edgevit-tmp" in p.name]
