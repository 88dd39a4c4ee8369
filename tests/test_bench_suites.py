"""Benchmark suites: the committed ones load, bad ones fail with one line, and `edgevit bench --suite`
runs models and artifacts in one pass with CLI overrides of device, threads and runtime."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.bench.suites import load_suite
from edgevit.bench.synthetic import conv_stack
from edgevit.cli import app
from edgevit.errors import ConfigError

SUITES = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "suites").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_committed_suites_load(path: Path) -> None:
    suite = load_suite(path)
    assert suite.groups and all(g.models or g.artifacts for g in suite.groups)


@pytest.mark.parametrize(("text", "match"), [
    ("name: x\n", "'cases' must list"),
    ("name: x\ncases: [{models: [cas_vit_xs], colour: red}]\n", "unknown field 'colour'"),
    ("name: x\ncases: [{precisions: [fp32]}]\n", "give 'models' or 'artifacts'"),
    ("name: x\ncases: [{models: [cas_vit_xs], targets: [onnx]}]\n", "use 'runtime'"),
    ("name: x\nthreads: two\ncases: [{models: [cas_vit_xs]}]\n", "'threads' must be int"),
    ("name: x\nprotocol: {runs: 0}\ncases: [{models: [cas_vit_xs]}]\n", "protocol"),
    ("[unclosed\n", "not valid YAML"),
])
def test_bad_suites(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_suite(path)
    res = CliRunner().invoke(app, ["bench", "--suite", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output


@pytest.fixture
def suite(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    conv_stack(tmp_path / "nets" / "net.onnx", 4)
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\nprofile: host\nthreads: 1\n"
        "protocol: {warmup: 1, warmup_seconds: 0.0, runs: 3}\n"
        "cases:\n"
        "  - models: [toy_vit]\n    precisions: [fp32]\n    img_size: 64\n"
        "  - artifacts: [nets/net.onnx]\n"
    )
    return path


def _cases(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cases"]


def test_suite_runs_models_and_artifacts(suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    res = CliRunner().invoke(app, ["bench", "--suite", str(suite), "--json", str(out)])
    assert res.exit_code == 0, res.output
    cases = _cases(out)
    assert sorted(c["case"]["model"] or Path(c["case"]["artifact"]).name for c in cases) == ["net.onnx", "toy_vit"]
    for c in cases:
        assert c["ok"] and c["case"]["threads"] == 1 and len(c["samples_ms"]) >= 3
        assert 0 < c["stats"]["median"] <= c["stats"]["p90"] <= c["stats"]["p99"]


def test_suite_overrides_device_threads_and_runtime(suite: Path, tmp_path: Path) -> None:
    """Another profile brings its own threads (the suite's belong to its profile); --runtime wins over
    the profile's runtime (arm-a17: ncnn) for model names."""
    out = tmp_path / "res.json"
    res = CliRunner().invoke(app, ["bench", "--suite", str(suite), "--device", "arm-a17", "--runtime", "onnxruntime",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "not the arm-a17 device" in res.output
    cases = _cases(out)
    assert {c["case"]["threads"] for c in cases} == {4}
    assert {c["case"]["runtime"] for c in cases} == {"onnxruntime"}
    res = CliRunner().invoke(app, ["bench", "--suite", str(suite), "--device", "arm-a17", "--runtime", "onnxruntime",
                                   "--threads", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert {c["case"]["threads"] for c in _cases(out)} == {2}


def test_explicit_device_host_overrides_the_suites_profile(suite: Path, tmp_path: Path) -> None:
    """The CLI used to turn `--device host` into "no device", so a suite's own profile won."""
    a17_suite = suite.with_name("a17.yaml")
    a17_suite.write_text(suite.read_text().replace("profile: host", "profile: arm-a17"))
    out = tmp_path / "res.json"
    res = CliRunner().invoke(app, ["bench", "--suite", str(a17_suite), "--runtime", "onnxruntime",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["setup"]["profile"] == "arm-a17"
    res = CliRunner().invoke(app, ["bench", "--suite", str(a17_suite), "--device", "host", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["setup"]["profile"] == "host"


def test_cli_protocol_options_override_only_what_they_name(suite: Path, tmp_path: Path) -> None:
    """Whether --warmup was given used to be guessed by comparing it with its literal default."""
    out = tmp_path / "res.json"
    res = CliRunner().invoke(app, ["bench", "--suite", str(suite), "--runs", "7", "--json", str(out)])
    assert res.exit_code == 0, res.output
    proto = json.loads(out.read_text())["setup"]["protocol"]
    assert proto["runs"] == 7 and proto["warmup"] == 1 and proto["warmup_seconds"] == 0.0  # the rest: the suite's
    res = CliRunner().invoke(app, ["bench", "--suite", str(suite), "--warmup", "5", "--json", str(out)])
    assert res.exit_code == 0, res.output
    proto = json.loads(out.read_text())["setup"]["protocol"]
    assert proto["warmup"] == 5 and proto["runs"] == 3  # an explicit 5 (the old literal default) is honoured


def test_shipped_suites_are_found_by_name() -> None:
    assert load_suite("smoke").name == "smoke" and load_suite("benchmarks/suites/paper.yaml").name == "paper"
    with pytest.raises(ConfigError, match="paper, smoke"):
        load_suite("nosuch")
