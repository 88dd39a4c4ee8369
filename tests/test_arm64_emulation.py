"""Opt-in: edgevit's fp32 and int8 ONNX artifacts and OpenVINO IRs give the same outputs on arm64 as on x86.

Runs tests/emulation/arm64.py (`python -m tests.emulation.arm64`: aarch64 ONNX Runtime and OpenVINO in
a Debian arm64 rootfs under qemu-aarch64-static) and checks its report: fp32 within the conformance bound
of x86 and of the PyTorch model, int8 cosine >= 0.999 against x86 int8 on every image (for ONNX Runtime's
arm64-preset int8: against fp32 instead where this x86 CPU lacks VNNI and its u8s8 kernels saturate; the
reduce_range int8 always against x86 int8). OpenVINO IRs run with the host's CPU plugin properties
(f32 inference precision). Takes minutes to hours (emulation is ~200x slower than native) and needs
mmdebstrap + qemu-user-static, so it is deselected by default:

    pytest -m emulation tests/test_arm64_emulation.py

EDGEVIT_EMU_MODELS (space-separated) and EDGEVIT_EMU_IMAGES (default 4) narrow the run;
EDGEVIT_EMU_JOBS runs that many guest processes at once (default 1).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.emulation import harness as emu

REPO = Path(__file__).resolve().parents[1]
MODULE = "tests.emulation.arm64"

pytestmark = [pytest.mark.emulation, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    missing = emu.missing_tools(emu.ARM64)
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: apt-get install mmdebstrap qemu-user-static")
    out = tmp_path_factory.mktemp("arm64")
    cmd = [sys.executable, "-m", MODULE, "--json", str(out / "report.json"),
           "--images", os.environ.get("EDGEVIT_EMU_IMAGES", "4"),
           "--jobs", os.environ.get("EDGEVIT_EMU_JOBS", "1"),
           "--workdir", str(out / "artifacts")]
    if models := os.environ.get("EDGEVIT_EMU_MODELS"):
        cmd += ["--models", *models.split()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * 3600)
    if proc.returncode == 2:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    if not (out / "report.json").is_file():
        pytest.fail(f"no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    data = json.loads((out / "report.json").read_text())
    shutil.rmtree(out / "artifacts", ignore_errors=True)
    return data


def test_guest_is_really_aarch64(report: dict) -> None:
    assert report["guest"]["machine"] == "aarch64"
    assert report["guest"]["onnxruntime"] == report["host"]["onnxruntime"]


def test_fp32_matches_x86_and_torch_within_conformance_bound(report: dict) -> None:
    fp32 = [c for c in report["checks"] if c["precision"] == "fp32"]
    assert fp32
    for c in fp32:
        assert c["max_abs_err"] <= c["bound"], c
        if c["max_abs_err_vs_torch"] is not None:
            assert c["max_abs_err_vs_torch"] <= c["bound_vs_torch"], c


def test_int8_cosine_vs_x86_int8(report: dict) -> None:
    int8 = [c for c in report["checks"] if c["precision"] in ("int8", "int8rr")]
    assert int8
    for c in int8:
        assert c["passed"], c
        if c["precision"] == "int8rr" or report["host_vnni"]:
            assert c["cosine_min"] >= 0.999, c  # strictly against x86 where x86 cannot saturate
        else:
            assert c["cosine_min_vs_fp32"] >= c["cosine_min_x86_vs_fp32"], c


def test_no_timings_reported(report: dict) -> None:
    """Emulated runs say nothing about device latency: the report must not carry any timing."""
    keys = {k for c in report["checks"] for k in c}
    assert not {k for k in keys if k.endswith(("_ms", "_s")) or "latency" in k or "time" in k}, keys
    assert report["timings"].startswith("none")


def test_image_contents_run_edgevit_on_arm64(report: dict) -> None:
    """`edgevit --help` and `edgevit doctor` run on arm64 with exactly Dockerfile.arm64's package set."""
    img = report.get("image_check")
    if img is None:
        pytest.skip("image check not run")
    assert img["passed"], json.dumps(img["commands"], indent=1)


def test_openvino_ir_matches_x86_openvino(report: dict) -> None:
    """The aarch64 OpenVINO wheel runs edgevit's IRs under qemu: fp32 within the conformance bound of
    x86 OpenVINO and of PyTorch, int8 cosine >= 0.999 to x86 OpenVINO int8, both computed in f32."""
    pytest.importorskip("openvino")
    ov = [c for c in report["checks"] if c.get("backend") == "openvino"]
    assert {c["precision"] for c in ov} == {"fp32", "int8"}, ov
    assert report["guest_openvino"]["machine"] == "aarch64"
    assert report["guest_openvino"]["openvino"] == report["host"]["openvino"]
    assert set(report["guest_openvino"]["inference_precision"].values()) == {"f32"}
    for c in ov:
        assert c["passed"], c
        if c["precision"] == "fp32":
            assert c["max_abs_err"] <= c["bound"] and c["max_abs_err_vs_torch"] <= c["bound_vs_torch"], c
        else:
            assert c["cosine_min"] >= 0.999, c
