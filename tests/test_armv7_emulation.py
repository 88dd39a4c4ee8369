"""Opt-in: edgevit's ncnn artifacts give the same outputs on armv7 (Cortex-A17 class) as on x86.

Runs tests/emulation/armv7.py (`python -m tests.emulation.armv7`) (the armv7l ncnn wheel from PyPI in a Debian armhf rootfs under
`qemu-arm-static -cpu cortex-a15`) and checks its report: fp32 within the conformance bound of x86
ncnn and of the PyTorch model on every image, fp16 cosine >= 0.999 against x86 ncnn, int8 (edgevit's
ncnn int8) cosine >= 0.995 to PyTorch with the int8 kernels really running on armv7. Takes many minutes
(emulation is ~200x slower than native) and needs mmdebstrap + qemu-user-static, so it is deselected
by default:

    pytest -m emulation tests/test_armv7_emulation.py

EDGEVIT_EMU_MODELS (space-separated) and EDGEVIT_EMU_IMAGES narrow the run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.emulation import harness as emu

REPO = Path(__file__).resolve().parents[1]
MODULE = "tests.emulation.armv7"

pytestmark = [pytest.mark.emulation, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    missing = emu.missing_tools(emu.ARMHF)
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: apt-get install mmdebstrap qemu-user-static")
    out = tmp_path_factory.mktemp("armv7")
    cmd = [sys.executable, "-m", MODULE, "--json", str(out / "report.json"),
           "--images", os.environ.get("EDGEVIT_EMU_IMAGES", "4"), "--workdir", str(out / "artifacts")]
    if models := os.environ.get("EDGEVIT_EMU_MODELS"):
        cmd += ["--models", *models.split()]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=4 * 3600)
    if proc.returncode == 2:
        pytest.skip(proc.stderr.strip()[-300:])
    assert (out / "report.json").is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads((out / "report.json").read_text())


def test_guest_is_armv7_with_neon(report: dict) -> None:
    assert report["guest"]["machine"] == "armv7l"
    assert report["guest"]["neon"] and report["guest"]["vfpv4"]
    assert report["guest"]["ncnn"] == report["host"]["ncnn"]


def test_fp32_matches_x86_and_pytorch(report: dict) -> None:
    fp32 = [c for c in report["checks"] if c["precision"] == "fp32"]
    assert fp32
    for c in fp32:
        assert c["max_abs_err"] <= c["bound"], c
        assert c["max_abs_err_vs_torch"] <= c["bound_vs_torch"], c


def test_fp16_close_to_x86(report: dict) -> None:
    for c in (c for c in report["checks"] if c["precision"] == "fp16"):
        assert c["cosine_min"] >= 0.999, c


def test_x86_exports_were_verified(report: dict) -> None:
    for key, v in report["x86_pipeline_verification"].items():
        assert v is None or v["passed"], (key, v)


def test_int8_close_to_pytorch_and_really_int8(report: dict) -> None:
    int8 = [c for c in report["checks"] if c["precision"] == "int8"]
    assert int8
    for c in int8:
        assert c["passed"], c
        assert c["cosine_min_vs_torch"] >= 0.995 and c["top1_agreement_vs_torch"] >= 0.8, c
        assert c["cosine_min"] >= 0.999, c  # armv7 vs x86 ncnn int8
        assert c["int8_layers"] and c["int8_layers"] > 0, c
        if c["max_abs_diff_to_fp32"] is not None:  # the same model's fp32 ran too: int8 must differ from it
            assert c["max_abs_diff_to_fp32"] > 0, c
