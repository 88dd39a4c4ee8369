"""TensorRT target. Without TensorRT or a CUDA GPU (this CI) the target reports itself unavailable with
the fix, the CLI says so in one line and leaves nothing, and the build/run tests skip with the probe's
reason. What runs everywhere: the builder decisions (pure functions of the request) and the ONNX that
would be handed to TensorRT, linted by Polygraphy. No TensorRT answer is ever faked."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app
from edgevit.errors import ConfigError, UnavailableError
from edgevit.backends import ExportRequest, get_backend
from edgevit.backends.tensorrt.export import KEEP_FP32_LAYER_TYPES, keep_fp32, lint_onnx, plan_build, prepare_onnx
from edgevit.backends.tensorrt.runner import probe
from tests._families import IMG, images

TARGET = get_backend("tensorrt")
TRT = probe()
needs_trt = pytest.mark.skipif(not TRT.available, reason=TRT.reason)


def _req(tmp_path, precision="fp16", *, dynamic=False, batch=1, calib=None, **options):
    from tests._toy import ToyViT

    torch.manual_seed(0)
    x = torch.from_numpy(np.resize(images(1), (2 if dynamic else batch, 3, IMG, IMG)))
    return ExportRequest(model_name="toy_vit", model=ToyViT().eval(), example=x, output=tmp_path / "t.engine",
                         precision=precision, img_size=IMG, batch=batch, dynamic_batch=dynamic, calib=calib,
                         options=dict(options))


# ---------------------------------------------------------------------------------- availability


def test_unavailable_target_names_the_fix():
    avail = TARGET.availability()
    if TRT.available:
        pytest.skip("TensorRT is available here")
    assert not avail.available
    assert "pip install 'edgevit[tensorrt]'" in avail.reason or "CUDA" in avail.reason, avail.reason
    assert "CUDA GPU" in avail.reason or "CUDA device" in avail.reason


def test_cli_missing_runtime_is_one_line_and_leaves_nothing(tmp_path):
    if TRT.available:
        pytest.skip("TensorRT is available here")
    res = CliRunner().invoke(app, ["export", "toy_vit", "--target", "tensorrt", "-o", str(tmp_path)])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "tensorrt" in lines[0], res.output
    if "edgevit[tensorrt]" in TRT.reason:  # not installed: the line names the extra, intact
        assert "pip install 'edgevit[tensorrt]'" in lines[0] and "CUDA GPU" in lines[0], lines[0]
    else:  # installed but unusable (no CUDA device, placeholder wheel): the line carries the probe's reason
        assert " ".join(TRT.reason.split()) in lines[0], (TRT.reason, lines[0])
    assert list(tmp_path.iterdir()) == []


def test_exporter_itself_refuses_without_tensorrt(tmp_path):
    if TRT.available:
        pytest.skip("TensorRT is available here")
    with pytest.raises(UnavailableError, match="TensorRT is unavailable"):
        TARGET.export(_req(tmp_path))
    assert not (tmp_path / "t.engine").exists()


# ---------------------------------------------------------------------------------- builder decisions


def test_fp16_plan_pins_normalization_to_fp32(tmp_path):
    plan = plan_build(_req(tmp_path, "fp16"))
    assert plan.flags == ("FP16", "OBEY_PRECISION_CONSTRAINTS") and plan.profile is None
    assert plan.keep_fp32_types == KEEP_FP32_LAYER_TYPES == ("NORMALIZATION",)
    assert keep_fp32("NORMALIZATION", "/blocks.0/norm1/LayerNormalization", plan)
    assert not keep_fp32("CONVOLUTION", "/stem/Conv", plan)
    assert plan.workspace_mib == 4096


def test_fp32_plan_sets_no_precision_flags(tmp_path):
    plan = plan_build(_req(tmp_path, "fp32"))
    assert plan.flags == () and plan.keep_fp32_types == () and plan.onnx_preset is None


def test_dynamic_batch_gets_one_profile(tmp_path):
    plan = plan_build(_req(tmp_path, dynamic=True, max_batch=16))
    assert plan.profile == ((1, 3, IMG, IMG), (1, 3, IMG, IMG), (16, 3, IMG, IMG))
    cmd = shlex.split(plan.trtexec("toy_vit.onnx", "t.engine"))
    assert f"--minShapes=input:1x3x{IMG}x{IMG}" in cmd and f"--maxShapes=input:16x3x{IMG}x{IMG}" in cmd


def test_int8_default_is_explicit_qdq_from_the_tensorrt_preset(tmp_path):
    plan = plan_build(_req(tmp_path, "int8", calib=object()))
    assert plan.int8_method == "qdq" and plan.onnx_preset == "tensorrt"
    assert set(plan.flags) == {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"}
    typed = plan_build(_req(tmp_path, "int8", calib=object(), strongly_typed=True))
    assert typed.strongly_typed and typed.flags == ()
    assert "--stronglyTyped" in typed.trtexec("m.onnx", "m.engine")


def test_int8_calibrator_with_cache(tmp_path):
    plan = plan_build(_req(tmp_path, "int8", calib=object(), int8_method="calibrator", calib_cache="c.cache"))
    assert plan.int8_method == "calibrator" and plan.onnx_preset is None and plan.calib_cache == "c.cache"
    cmd = shlex.split(plan.trtexec("m.onnx", "m.engine", ["ln1", "ln2"]))
    assert {"--int8", "--fp16", "--calib=c.cache", "--precisionConstraints=obey",
            "--layerPrecisions=ln1:fp32,ln2:fp32", "--memPoolSize=workspace:4096M"} <= set(cmd)


@pytest.mark.parametrize(
    ("precision", "options", "calib", "match"),
    [
        ("fp16", {"strongly_typed": True}, None, "strongly_typed"),
        ("int8", {}, None, "calibration images"),
        ("int8", {"int8_method": "magic"}, object(), "int8 method"),
        ("int8", {"int8_method": "calibrator", "strongly_typed": True}, object(), "weakly typed"),
        ("fp16", {"workspace_mib": 0}, None, "workspace_mib"),
    ],
)
def test_bad_builder_options_are_config_errors(tmp_path, precision, options, calib, match):
    with pytest.raises(ConfigError, match=match):
        plan_build(_req(tmp_path, precision, calib=calib, **options))


# ---------------------------------------------------------------------------------- the ONNX hand-over


def test_onnx_handed_to_tensorrt_passes_polygraphy_lint(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed: pip install 'edgevit[onnx]'")
    pytest.importorskip("polygraphy", reason="polygraphy is not installed: pip install 'edgevit[tensorrt]'")
    pytest.importorskip("onnx_graphsurgeon", reason="onnx-graphsurgeon is not installed: pip install 'edgevit[tensorrt]'")
    import onnx

    req = _req(tmp_path, "fp16")
    path, facts = prepare_onnx(req, plan_build(req), tmp_path)
    assert facts["onnx_precision"] == "fp32"  # fp16 engines come from the fp32 ONNX + the FP16 flag
    model = onnx.load(str(path))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}  # no ORT-only fused ops
    assert "LayerNormalization" in {n.op_type for n in model.graph.node}  # -> INormalizationLayer
    lint = lint_onnx(path)
    assert lint["status"] == "passed", lint
    assert lint["passing_nodes"] > 0 and lint["failing_nodes"] == []


# ---------------------------------------------------------------------------------- on a GPU


@needs_trt
def test_fp16_engine_builds_runs_and_matches_pytorch(tmp_path):  # pragma: no cover - needs a GPU
    from edgevit.backends import open_runner

    req = _req(tmp_path, "fp16", dynamic=True, max_batch=8)
    res = TARGET.export(req)
    assert res.metadata["trtexec"].startswith("trtexec --onnx=")
    assert res.metadata["fp32_pinned_layers"], "LayerNorm layers must be pinned to fp32"
    x = images(4)
    with torch.no_grad():
        ref = req.model(torch.from_numpy(x)).numpy()
    with open_runner("tensorrt", res.artifact) as r:
        got = r.infer(x)
        times = r.time_ms(x[:1], runs=20)
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    assert cos.min() > 0.999 and len(times) == 20 and min(times) > 0


@needs_trt
def test_cli_round_trip_on_gpu(tmp_path):  # pragma: no cover - needs a GPU
    runner = CliRunner()
    res = runner.invoke(app, ["export", "toy_vit", "--target", "tensorrt", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "toy_vit_fp16.engine.json").read_text())
    assert side["verification"]["executed"] and side["verification"]["passed"]
    assert runner.invoke(app, ["verify", str(tmp_path / "toy_vit_fp16.engine")]).exit_code == 0
