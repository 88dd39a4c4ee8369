"""`edgevit bench`, `edgevit devices` and `edgevit regress` end to end through Typer's CliRunner."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgevit.bench.synthetic import conv_stack
from edgevit.cli import app

FAST = ["--runs", "10", "--warmup", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {k: conv_stack(root / k / "net.onnx", n) for k, n in (("base", 4), ("heavy", 40))}


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def test_devices(runner):
    res = runner.invoke(app, ["devices"])
    assert res.exit_code == 0 and "arm-a17" in res.output and "jetson-orin-nano" in res.output
    res = runner.invoke(app, ["devices", "arm-a17", "--json"])
    data = json.loads(res.stdout)
    assert data[0]["runtime"] == "ncnn" and data[0]["this_machine"] in (True, False)
    res = runner.invoke(app, ["devices", "nope"])
    assert res.exit_code == 2 and "unknown device profile" in res.output


def test_bench_writes_every_format(runner, artifacts, tmp_path):
    out = f"{tmp_path}/out/"
    res = runner.invoke(app, ["bench", str(artifacts["base"]), *FAST, "--reference", "--json", out, "--csv", out,
                              "--markdown", out, "--plot", out])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    stem = "bench_host_onnxruntime_fp32_t1_b1"
    assert files == [f"{stem}.{e}" for e in ("csv", "json", "md", "png")]
    assert "net/fp32/b1" in res.output


def test_bench_strict_and_bad_device(runner, artifacts):
    res = runner.invoke(app, ["bench", str(artifacts["base"]), "--device", "arm-a17", "--strict", *FAST])
    assert res.exit_code == 2 and "--strict refuses" in res.output
    res = runner.invoke(app, ["bench", str(artifacts["base"]), "--device", "arm-a17", *FAST])
    assert res.exit_code == 0 and "not the arm-a17 device" in res.output


def test_regress_cli_gate(runner, artifacts, tmp_path):
    base, cur = tmp_path / "base.json", tmp_path / "cur.json"
    assert runner.invoke(app, ["bench", str(artifacts["base"]), *FAST, "--reference", "--json", str(base)]).exit_code == 0
    assert runner.invoke(app, ["bench", str(artifacts["heavy"]), *FAST, "--reference", "--json", str(cur)]).exit_code == 0
    md = tmp_path / "report.md"
    res = runner.invoke(app, ["regress", str(cur), "--baseline", str(base), "--tolerance", "1.0", "--floor-ms", "0.2",
                              "--statistic", "p25", "--normalize", "always", "--markdown", str(md)])
    assert res.exit_code == 1 and "regression" in res.output, res.output
    assert "❌ latency regression" in md.read_text()
    # --force: on a shared machine the run may be flagged busy, and --update refuses an unstable run
    res = runner.invoke(app, ["regress", str(cur), "--baseline", str(tmp_path / "new.json"), "--update", "--force"])
    assert res.exit_code == 0 and (tmp_path / "new.json").exists()
    res = runner.invoke(app, ["regress", str(cur), "--baseline", str(tmp_path / "new.json")])
    assert res.exit_code == 0, res.output


def test_runtime_options_reach_the_runner(runner, artifacts, tmp_path):
    out = tmp_path / "o.json"
    res = runner.invoke(app, ["bench", str(artifacts["base"]), *FAST, "-O", "optimization=basic", "--json", str(out)])
    assert res.exit_code == 0, res.output
    (case,) = json.loads(out.read_text())["cases"]
    assert case["ok"] and case["case"]["options"] == {"optimization": "basic"}
    # an option no measured runtime reads is refused before anything runs
    res = runner.invoke(app, ["bench", str(artifacts["base"]), *FAST, "-O", "powersave=2"])
    assert res.exit_code == 2 and "'powersave' is not read by the runtimes measured here" in res.output
    res = runner.invoke(app, ["bench", str(artifacts["base"]), *FAST, "-O", "optimization"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
