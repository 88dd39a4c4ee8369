"""`edgevit predict` / `calibrate` / `devices`: the JSON record schema and the one-line errors."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgevit.cli import app

RECORD_KEYS = {"model", "device", "runtime", "threads", "precision", "predicted_ms", "interval_ms", "calibration",
               "extrapolation", "extrapolates", "notes", "predictor", "breakdown_ms", "source"}


@pytest.fixture(scope="module")
def toy_ncnn(tmp_path_factory):
    pytest.importorskip("pnnx", reason="exports the toy network to ncnn (pip install 'edgevit[ncnn]')")
    pytest.importorskip("ncnn", reason="blob shapes come from ncnn (pip install 'edgevit[ncnn]')")
    from tests._predict_toy import export_toy

    return export_toy(tmp_path_factory.mktemp("toy"), tokens=True)


def _one_error_line(res) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output
    return lines[0]


def test_predict_writes_records_with_interval_and_calibration(toy_ncnn, tmp_path) -> None:
    out = tmp_path / "pred.json"
    md = tmp_path / "md"
    res = CliRunner().invoke(app, ["predict", str(toy_ncnn), "--device", "arm-a17", "--json", str(out),
                                   "--markdown", f"{md}/"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["schema"] == "edgevit.predict/1"
    (rec,) = doc["predictions"]
    assert RECORD_KEYS <= set(rec)
    assert (rec["model"], rec["device"], rec["runtime"], rec["threads"], rec["precision"]) == (
        "toy", "arm-a17", "ncnn", 4, "fp32")
    lo, hi = rec["interval_ms"]
    assert 0 < lo < rec["predicted_ms"] < hi
    assert rec["calibration"].startswith("fitted on 25 networks on Rockchip RK3288")
    assert "leave-one-out median error" in rec["calibration"]
    assert rec["extrapolates"] and any("token GEMMs" in w for w in rec["extrapolation"])  # no transformer on RK3288
    assert rec["source"]["repository"] == "https://github.com/Tencent/ncnn"
    assert (md / "predict_arm-a17_ncnn_t4_fp32.md").is_file()
    assert "not a measurement" in " ".join(res.output.split())


def test_predict_int8_and_one_thread(toy_ncnn, tmp_path) -> None:
    out = tmp_path / "p.json"
    res = CliRunner().invoke(app, ["predict", str(toy_ncnn), "-d", "arm-a17", "--threads", "1", "-p", "int8", "--json",
                                   str(out)])
    assert res.exit_code == 0, res.output
    (rec,) = json.loads(out.read_text())["predictions"]
    assert (rec["threads"], rec["precision"], rec["predictor"]) == (1, "int8", "rk3288/ncnn/t1/int8")
    assert any("ncnn2int8" in n for n in rec["notes"])


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["-d", "no-such-board"], "unknown device profile"),
        (["-d", "arm-a17", "--threads", "3"], "no calibration data for arm-a17 with ncnn, 3 threads, fp32; it has:"),
        (["-d", "arm-a17", "--runtime", "onnxruntime"], "no calibration data for arm-a17 with onnxruntime"),
        (["-d", "arm-a17", "-p", "fp16"], "ncnn 4 threads int8"),
        (["-d", "rtx3090"], "no latency predictor for rtx3090"),
    ],
)
def test_predict_one_line_errors(toy_ncnn, args, expect) -> None:
    res = CliRunner().invoke(app, ["predict", str(toy_ncnn), *args])
    assert res.exit_code == 2, res.output
    assert expect in _one_error_line(res)


def test_predict_host_without_calibration_says_what_to_run(toy_ncnn, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["predict", str(toy_ncnn), "--device", "host"])
    assert res.exit_code == 2
    assert "edgevit calibrate --device host" in _one_error_line(res)


def test_predict_refuses_a_graph_the_predictor_was_not_calibrated_on(tmp_path) -> None:
    fake = tmp_path / "m.onnx"
    fake.write_bytes(b"not read")
    res = CliRunner().invoke(app, ["predict", str(fake), "--device", "arm-a17"])
    assert res.exit_code == 2
    assert "calibrated on ncnn graphs" in _one_error_line(res)


def test_calibrate_needs_exactly_one_mode() -> None:
    for args in ([], ["--refit", "--device", "host"]):
        res = CliRunner().invoke(app, ["calibrate", *args])
        assert res.exit_code == 2 and "--device host" in _one_error_line(res)
    res = CliRunner().invoke(app, ["calibrate", "--device", "arm-a17"])
    assert res.exit_code == 2 and "--refit" in _one_error_line(res)


def test_devices_shows_which_profiles_predict() -> None:
    res = CliRunner().invoke(app, ["devices", "--json"])
    assert res.exit_code == 0
    by = {d["name"]: d for d in json.loads(res.output)}
    keys = {p["key"] for p in by["arm-a17"]["predictors"]}
    assert {"rk3288/ncnn/t4/fp32", "rk3288/ncnn/t4/int8", "rk3288/ncnn/t1/fp32"} <= keys
    assert by["arm-a17"]["predict_board"] == "rk3288"
    assert by["rtx3090"]["predictors"] == []
    one = CliRunner().invoke(app, ["devices", "arm-a72"])
    assert "predictor: rpi4/ncnn/t4/fp32" in one.output


def test_profile_predict_board_is_validated(tmp_path) -> None:
    from edgevit.bench.profiles import load_profile_file
    from edgevit.errors import ConfigError

    src = (load_profile_file.__globals__["Path"](__file__).parents[1] / "device_profiles" / "arm-a17.yaml").read_text()
    bad = tmp_path / "arm-a17.yaml"
    bad.write_text(src.replace("predict_board: rk3288", "predict_board: rk3289"))
    with pytest.raises(ConfigError, match="predict_board 'rk3289' has no published tables; known: .*rk3288"):
        load_profile_file(bad)
    bad.write_text(src.replace("predict_board: rk3288", "predict_board: 3288"))
    with pytest.raises(ConfigError, match="field 'predict_board' must be str"):
        load_profile_file(bad)
