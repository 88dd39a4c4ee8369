"""`edgevit doctor`: every target and runtime of the tables, available or not, version, and why not."""
from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from edgevit.backends import backends, runtimes
from edgevit.cli import app


def _doctor_json() -> dict:
    res = CliRunner().invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_lists_every_target_and_runtime_from_the_tables():
    data = _doctor_json()
    assert [r["target"] for r in data["targets"]] == list(backends())
    assert [r["runtime"] for r in data["runtimes"]] == list(runtimes())
    for row in data["targets"] + data["runtimes"]:
        assert isinstance(row["available"], bool)
        assert row["available"] or row["reason"], row  # unavailable always says why
    assert data["host"]["python"] and "xnnpack" in data["host"]


def test_rows_agree_with_the_probes():
    data = _doctor_json()
    rt = {r["runtime"]: r for r in data["runtimes"]}
    tg = {r["target"]: r for r in data["targets"]}
    assert rt["torchscript-lite"]["available"] and rt["torchscript-lite"]["version"]
    assert tg["torchscript"]["available"] and tg["torchscript"]["precisions"] == ["fp32", "int8"]
    if sys.platform != "darwin":
        assert not rt["coreml"]["available"] and "macOS" in rt["coreml"]["reason"]
    if not rt["tensorrt"]["available"]:
        reason = rt["tensorrt"]["reason"]
        assert "pip install 'edgevit[tensorrt]'" in reason or "CUDA" in reason
        assert not tg["tensorrt"]["available"] and tg["tensorrt"]["reason"]
    assert tg["coreml"]["default_precision"] == "fp16" and tg["tensorrt"]["requirement"] == "a CUDA GPU"


def test_table_output_names_every_target():
    res = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for key in backends():
        assert key in res.output
    if "edgevit[tensorrt]" in runtimes()["tensorrt"].probe().reason:
        assert "edgevit[tensorrt]" in res.output  # Rich markup must not eat the [extra]
