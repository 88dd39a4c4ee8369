"""The CLI's error contract: one red line and a non-zero exit, tracebacks only with EDGEVIT_DEBUG."""
from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from edgevit.cli import app


def test_unknown_model_one_line_exit_2():
    res = CliRunner().invoke(app, ["info", "no_such_model"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output


def test_console_script_starts_without_heavy_imports():
    code = (
        "import sys, edgevit.cli;"
        "heavy = [m for m in ('onnx', 'onnxruntime', 'coremltools', 'tensorrt', 'executorch', 'ncnn', 'matplotlib')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
