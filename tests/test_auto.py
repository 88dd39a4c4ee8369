"""`--runtime auto` and `export --target best`: every candidate runtime of a profile measured in one run,
the fastest within the accuracy budget named, exported, and the choice recorded in the artifact's record."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app

runner = CliRunner()
PROFILE = """\
name: twoway
title: this machine with two candidate runtimes
arch: auto
cpu: auto
cores: auto
threads: 1
runtime: auto
candidates: [onnxruntime, ncnn]
precisions: [fp32, int8]
"""


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "twoway.yaml"
    path.write_text(PROFILE)
    return path


def test_auto_measures_every_candidate_and_names_the_fastest(profile, tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "toy_vit", "--device", str(profile), "--runs", "5", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert {c["case"]["runtime"] for c in data["cases"]} == {"onnxruntime", "ncnn"}
    assert {c["case"]["precision"] for c in data["cases"]} == {"fp32", "int8"}
    choice = data["setup"]["auto"]["toy_vit"]
    ok = [c for c in choice["candidates"] if c["qualifies"]]
    assert choice["chosen"]["case"] == min(ok, key=lambda c: c["median_ms"])["case"]
    assert all(c["cosine"] is not None for c in choice["candidates"])
    assert "toy_vit: fastest within the accuracy budget is" in res.stdout
    assert "toy_vit/ncnn/fp32/b1" in res.stdout and "toy_vit/onnxruntime/fp32/b1" in res.stdout


def test_a_candidate_below_the_budget_is_never_chosen():
    from edgevit.bench.choose import _judge
    from edgevit.bench.protocol import summarize
    from edgevit.bench.runner import Case, CaseResult

    def result(precision: str, cosine: float, median: float) -> CaseResult:
        case = Case(id=f"m/ort/{precision}", artifact="a", runtime="onnxruntime", target="onnx", precision=precision,
                    threads=1, model="m", verified={"passed": True, "executed": True, "cosine": cosine})
        return CaseResult(case, True, stats=summarize([median]), samples_ms=[median])

    assert not _judge(result("int8", 0.99, 1.0), 0.995).qualifies
    assert _judge(result("int8", 0.999, 1.0), 0.995).qualifies
    assert _judge(result("fp32", 0.9, 1.0), 0.995).qualifies  # fp32 is held to verification, not the budget


def test_export_best_writes_the_winner_with_its_choice(profile, tmp_path):
    res = runner.invoke(app, ["export", "toy_vit", "--target", "best", "--device", str(profile),
                              "-o", str(tmp_path / "out/")])
    assert res.exit_code == 0, res.output
    (side,) = (tmp_path / "out").glob("*.json")
    record = json.loads(side.read_text())
    choice = record["export"]["choice"]
    assert choice["chosen"]["runtime"] in ("onnxruntime", "ncnn") and len(choice["candidates"]) == 4
    assert record["target"] == choice["chosen"]["target"] and record["artifact"] == side.name[: -len(".json")]
    verify = runner.invoke(app, ["verify", str(side.with_name(record["artifact"]))])
    assert verify.exit_code == 0, verify.output


def test_device_belongs_to_target_best(tmp_path):
    res = runner.invoke(app, ["export", "toy_vit", "--device", "host", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--target best" in res.stderr


def test_profiles_validate_candidates(tmp_path):
    from edgevit.bench.profiles import validate_profile
    from edgevit.errors import ConfigError

    base = {"name": "b", "arch": "x86_64", "cpu": "x", "cores": 1, "threads": 1, "precisions": ["fp32"]}
    assert validate_profile({**base, "runtime": "auto", "candidates": ["onnxruntime"]}, "b").candidates == (
        "onnxruntime",)
    with pytest.raises(ConfigError, match="candidate runtime 'tflite'"):
        validate_profile({**base, "runtime": "auto", "candidates": ["tflite"]}, "b")
    assert Path(PROFILE) != Path()  # (the profile text above is what the other tests run)


def test_shipped_profiles_consider_openvino():
    """x86 hosts weigh every CPU runtime edgevit ships; the arm64 boards the ones with aarch64 wheels."""
    from edgevit.bench.profiles import load_profile

    assert load_profile("host").candidates == ("onnxruntime", "openvino", "executorch", "ncnn")
    for board in ("arm-a72", "arm-a76"):
        assert load_profile(board).candidates == ("onnxruntime", "openvino", "ncnn")


OPENVINO_ONLY = PROFILE.replace("candidates: [onnxruntime, ncnn]", "candidates: [onnxruntime, openvino]")


def test_auto_weighs_openvino_and_best_can_pick_it(tmp_path, monkeypatch):
    """Both runtimes measured side by side; with OpenVINO the only candidate, `--target best` writes its IR
    directory, the record holding the choice, and the copy verifies."""
    pytest.importorskip("openvino")
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    both = tmp_path / "twoway.yaml"
    both.write_text(OPENVINO_ONLY)
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "toy_vit", "--device", str(both), "-p", "fp32", "--runs", "5", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert {(c["case"]["runtime"], c["case"]["target"]) for c in data["cases"]} == {
        ("onnxruntime", "onnx"), ("openvino", "openvino")}
    assert data["setup"]["auto"]["toy_vit"]["chosen"]["runtime"] in ("onnxruntime", "openvino")

    only = tmp_path / "ovonly" / "twoway.yaml"
    only.parent.mkdir()
    only.write_text(OPENVINO_ONLY.replace("[onnxruntime, openvino]", "[openvino]"))
    res = runner.invoke(app, ["export", "toy_vit", "--target", "best", "--device", str(only), "--fp32",
                              "-o", str(tmp_path / "out/")])
    assert res.exit_code == 0, res.output
    (side,) = (tmp_path / "out").glob("*.json")
    record = json.loads(side.read_text())
    assert record["target"] == "openvino" and record["export"]["choice"]["chosen"]["runtime"] == "openvino"
    art = side.with_name(record["artifact"])
    assert art.is_dir() and sorted(p.name for p in art.iterdir()) == ["model.bin", "model.xml"]
    verify = runner.invoke(app, ["verify", str(art)])
    assert verify.exit_code == 0, verify.output
