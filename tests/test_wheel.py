"""edgevit installed from its wheel (not the checkout) has its device profiles and suites: built here,
installed into a fresh venv outside the repository, run from a folder that is not the checkout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv (seeing this interpreter's site-packages for torch and the runtimes) with the wheel installed."""
    import shutil

    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # a copy, so setuptools' build/ folder never lands in the checkout
    shutil.copytree(REPO / "edgevit", src / "edgevit", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    wheelhouse = root / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheelhouse), str(src)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    wheel = next(wheelhouse.glob("edgevit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgevit/device_profiles/arm-a17.yaml" in names and "edgevit/suites/paper.yaml" in names
    env_dir = root / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
                              "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    return env_dir


def _run(env_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGEVIT_PROFILES")}
    env["COLUMNS"] = "200"
    code = "import sys; from edgevit.cli import main; sys.argv = ['edgevit', *sys.argv[1:]]; main()"
    return subprocess.run([str(env_dir / "bin" / "python"), "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_wheel_ships_profiles_and_suites(installed, tmp_path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import edgevit; print(edgevit.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert str(installed) in where and str(REPO) not in where  # the wheel's copy, not the checkout
    devices = _run(installed, tmp_path, "devices", "--json")
    assert devices.returncode == 0, devices.stderr
    names = {p["name"] for p in json.loads(devices.stdout)}
    assert {"arm-a17", "host", "arm-a76"} <= names
    shown = _run(installed, tmp_path, "devices", "arm-a17")
    assert shown.returncode == 0 and "Cortex-A17" in shown.stdout


def test_wheel_benches_under_a_shipped_profile(installed, tmp_path):
    import warnings

    import tests._toy  # noqa: F401  registers toy_vit (exported here, benched by the installed edgevit)
    from edgevit.export import export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art = export("toy_vit", output=tmp_path / "toy.onnx").artifact
    res = _run(installed, tmp_path, "bench", str(art), "--device", "arm-a17", "--runs", "5",
               "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["setup"]["profile"] == "arm-a17" and data["cases"][0]["ok"]
    suite = _run(installed, tmp_path, "bench", "--suite", "nosuchsuite")
    assert suite.returncode == 2 and "paper" in suite.stderr and "smoke" in suite.stderr
