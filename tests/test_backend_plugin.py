"""A backend is one folder plus one registration: a toy backend installed as a plugin (an entry point in
the `edgevit.backends` group) shows up everywhere lists of targets and runtimes are made, and exports,
verifies and benches through the real CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A toy backend: the deploy form as a TorchScript file, run by torch.jit.load."""
from pathlib import Path

import numpy as np
import torch

import tests._toy  # noqa: F401  registers the toy_vit model
from edgevit.backends import Availability, Backend, ExportResult, Runner, Runtime, register_backend


class ToyRunner(Runner):
    key = "toyrt"
    option_keys = ("flavour",)

    def load(self, path):
        self.module = torch.jit.load(str(path))

    def infer(self, x):
        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def export(req):
    with torch.no_grad():
        torch.jit.trace(req.model, req.example, check_trace=False).save(str(req.output))
    return ExportResult(Path(req.output), {"format": "toy TorchScript"})


register_backend(Backend(
    key="toy", title="Toy TorchScript file", suffix=".toyts", precisions=("fp32",), int8="not offered",
    extra="toy", export=export, calib_methods=(),
    runtime=Runtime(key="toyrt", title="toy runtime", runner=ToyRunner, extra="toy",
                    probe=lambda: Availability(True, "0.1")),
))
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("site")
    (site / "toy_edgevit_backend").mkdir()
    (site / "toy_edgevit_backend" / "__init__.py").write_text(PLUGIN)
    dist = site / "toy_edgevit_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-edgevit-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edgevit.backends]\ntoy = toy_edgevit_backend\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    env["EDGEVIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    env["COLUMNS"] = "200"
    return env


def _edgevit(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from edgevit.cli import main; sys.argv = ['edgevit', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=600)


def test_toy_backend_is_listed_everywhere(plugin_env, tmp_path):
    matrix = _edgevit(plugin_env, "targets", "--markdown")
    assert matrix.returncode == 0, matrix.stderr
    assert "| `toy` | `.toyts` | fp32 |" in matrix.stdout and "| toyrt |" in matrix.stdout
    help_ = _edgevit(plugin_env, "export", "--help")
    target_line = next(ln for ln in help_.stdout.splitlines() if "--target" in ln)
    assert "|toy" in target_line.replace(" ", ""), target_line
    doctor = json.loads(_edgevit(plugin_env, "doctor", "--json").stdout)
    assert "toy" in [r["target"] for r in doctor["targets"]] and not doctor["plugin_errors"]
    assert {"runtime": "toyrt", "available": True, "version": "0.1"}.items() <= next(
        r for r in doctor["runtimes"] if r["runtime"] == "toyrt").items()
    profile = tmp_path / "toyboard.yaml"
    profile.write_text("name: toyboard\narch: x86_64\ncpu: any x86-64\ncores: 1\nthreads: 1\nruntime: toyrt\n"
                       "precisions: [fp32]\n")
    shown = _edgevit(plugin_env, "devices", str(profile))
    assert shown.returncode == 0 and "measures with: toyrt" in shown.stdout, shown.stdout + shown.stderr
    bad = tmp_path / "badboard.yaml"
    bad.write_text(profile.read_text().replace("toyrt", "nosuchrt").replace("toyboard", "badboard"))
    refused = _edgevit(plugin_env, "devices", str(bad))
    assert refused.returncode == 2 and "toyrt" in refused.stderr  # the choices offered come from the registry


def test_toy_backend_exports_verifies_and_benches(plugin_env, tmp_path):
    out = tmp_path / "out"
    exp = _edgevit(plugin_env, "export", "toy_vit", "--target", "toy", "-o", f"{out}/")
    assert exp.returncode == 0, exp.stdout + exp.stderr
    art = out / "toy_vit_fp32.toyts"
    record = json.loads((out / "toy_vit_fp32.toyts.json").read_text())
    assert art.is_file() and record["target"] == "toy" and record["verification"]["passed"]
    ver = _edgevit(plugin_env, "verify", str(art))
    assert ver.returncode == 0 and "passed" in ver.stdout, ver.stdout + ver.stderr
    bench = _edgevit(plugin_env, "bench", str(art), "--runs", "5", "--json", str(tmp_path / "r.json"))
    assert bench.returncode == 0, bench.stdout + bench.stderr
    case = json.loads((tmp_path / "r.json").read_text())["cases"][0]
    assert case["ok"] and case["case"]["runtime"] == "toyrt" and len(case["samples_ms"]) >= 5


def test_registry_refuses_a_second_runtime_of_the_same_key():
    import dataclasses

    from edgevit.backends import get_backend, register_backend

    onnx = get_backend("onnx")
    with pytest.raises(ValueError, match="runtime 'onnxruntime' is registered twice"):
        register_backend(dataclasses.replace(onnx, key="onnx-copy"))
    with pytest.raises(ValueError, match="registered twice"):
        register_backend(onnx)


def test_plugin_that_fails_to_import_is_reported_not_fatal(tmp_path):
    site = tmp_path / "site"
    (site / "broken_backend").mkdir(parents=True)
    (site / "broken_backend" / "__init__.py").write_text("raise ImportError('needs libfoo')\n")
    dist = site / "broken_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[edgevit.backends]\nbroken = broken_backend\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    res = _edgevit(env, "doctor", "--json")
    assert res.returncode == 0, res.stderr
    errors = json.loads(res.stdout)["plugin_errors"]
    assert any("needs libfoo" in v for v in errors.values()), errors


def test_every_builtin_backend_is_a_folder_with_one_registration():
    from edgevit.backends import backends

    root = REPO / "edgevit" / "backends"
    folders = sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file())
    assert sorted(backends()) == folders
    for name in folders:
        text = (root / name / "__init__.py").read_text()
        assert text.count("register_backend(Backend(") == 1, name
    for legacy in ("exporters", "runtimes"):
        assert not (REPO / "edgevit" / legacy).exists()
