"""Host calibration end to end: export standard networks, measure them with bench's runner, fit, predict."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgevit.cli import app

pytestmark = pytest.mark.slow  # exports and measures several networks in fresh processes (minutes)


@pytest.mark.parametrize("runtime", ["ncnn", "onnxruntime"])
def test_calibrate_host_then_predict_host(runtime, tmp_path, monkeypatch) -> None:
    pytest.importorskip("ncnn" if runtime == "ncnn" else "onnxruntime")
    if runtime == "ncnn":
        pytest.importorskip("pnnx")
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    nets = "resnet18,mobilenet_v2,shufflenet_v2,squeezenet,vit_tiny"
    res = CliRunner().invoke(app, ["calibrate", "--device", "host", "--runtime", runtime, "--networks", nets,
                                   "--runs", "3", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "fitted on 5 networks on this host" in " ".join(res.output.split())
    model_file = tmp_path / "cache" / "predict" / f"host_{runtime}_t1_fp32.json"
    doc = json.loads(model_file.read_text())
    assert doc["model"]["runtime"] == runtime and len(doc["model"]["rows"]) == 5
    assert all(r["measured_ms"] > 0 for r in doc["model"]["rows"])
    suffix = ".ncnn" if runtime == "ncnn" else ".onnx"
    artifact = next((tmp_path / "cache" / "predict" / "nets").glob(f"mobilenet_v2-*{suffix}"))
    out = tmp_path / "p.json"
    res = CliRunner().invoke(app, ["predict", str(artifact), "--device", "host", "--runtime", runtime,
                                   "--threads", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    (rec,) = json.loads(out.read_text())["predictions"]
    assert rec["device"] == "host" and rec["runtime"] == runtime and rec["predicted_ms"] > 0
    # predicting a calibration network in-sample lands near its measurement
    measured = next(r["measured_ms"] for r in doc["model"]["rows"] if r["network"] == "mobilenet_v2")
    assert 0.33 < rec["predicted_ms"] / measured < 3
