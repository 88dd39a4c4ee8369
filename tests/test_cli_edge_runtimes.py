"""The ncnn and ExecuTorch artifacts through the CLI a user runs: export, `edgevit verify`, `edgevit bench`
(each artifact opened by its own runtime; the bench JSON parsed back)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app

CASES = [
    pytest.param("ncnn", "toy.ncnn", "ncnn", id="ncnn"),
    pytest.param("executorch", "toy.pte", "executorch", id="executorch"),
]


@pytest.mark.parametrize(("target", "name", "module"), CASES)
def test_export_verify_bench(target, name, module, tmp_out, tmp_path, monkeypatch):
    pytest.importorskip(module)
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    artifact = tmp_out / name
    res = runner.invoke(app, ["export", "toy_vit", "--target", target, "--img-size", "64", "-o", str(artifact)])
    assert res.exit_code == 0, res.output
    assert artifact.exists() and (tmp_out / f"{name}.json").is_file()

    res = runner.invoke(app, ["verify", str(artifact), "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "passed" in res.output and "cosine" in res.output
    ver = json.loads((tmp_out / f"{name}.json").read_text())["verification"]
    assert ver["passed"] and ver["outputs"][0]["cosine"] > 0.9999

    out = tmp_path / "bench.json"
    res = runner.invoke(app, ["bench", str(artifact), "--runs", "5", "--warmup", "1", "--threads", "1",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    (result,) = json.loads(out.read_text())["cases"]
    assert result["ok"] and result["case"]["runtime"] == module and result["case"]["target"] == target
    stats = result["stats"]
    assert 0 < stats["median"] <= stats["p90"] <= stats["p99"]
    assert len(result["samples_ms"]) >= 5 and result["peak_rss_mb"] > 0
