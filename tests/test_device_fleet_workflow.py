"""The device-fleet CI workflow stays true to the code: its matrix names real profiles with the target
their runtime runs, its commands use options that exist, and the board path needs no torch."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from edgevit.backends import backend_for_runtime, get_backend
from edgevit.bench.profiles import load_profile
from edgevit.cli import app

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "device-fleet.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_matrix_is_profiles_labelled_runners_with_their_target() -> None:
    jobs = _workflow()["jobs"]
    bench = jobs["bench"]
    assert bench["runs-on"] == ["self-hosted", "${{ matrix.profile }}"]
    assert bench["needs"] == "export" and jobs["gate"]["needs"] == "bench" and jobs["gate"]["if"] == "always()"
    include = bench["strategy"]["matrix"]["include"]
    for row in include:
        prof = load_profile(row["profile"])
        assert not prof.detected and row["target"] == backend_for_runtime(prof.runtime).key, row
        assert row["suffix"] == get_backend(row["target"]).suffix
    assert {r["target"] for r in include} <= set(jobs["export"]["strategy"]["matrix"]["target"])


def _options(command: str) -> set[str]:
    r = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert r.exit_code == 0
    return set(re.findall(r"--[a-z][a-z-]+", r.output))


def test_commands_use_options_that_exist() -> None:
    steps = " ".join(s.get("run", "") for job in _workflow()["jobs"].values() for s in job["steps"])
    for command in ("bench", "regress", "merge"):
        used = set(re.findall(rf"edgevit {command}\b[^\n;|&]*", steps.replace("\\\n", " ")))
        assert used, command
        flags = set().union(*(re.findall(r"--[a-z][a-z-]+", u) for u in used))
        assert flags <= _options(command), (command, flags - _options(command))
    assert "--strict" in steps and "--device ${{ matrix.profile }}" in steps


def test_export_step_lists_each_target(tmp_path: Path) -> None:
    for target in _workflow()["jobs"]["export"]["strategy"]["matrix"]["target"]:
        proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "export_suite.py"),
                               str(REPO / "benchmarks" / "suites" / "paper.yaml"), "--target", target, "-o",
                               str(tmp_path), "--dry-run"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        listed = {ln.split()[2] for ln in proc.stdout.splitlines() if ln.startswith("would export")}
        assert listed == {"fcaformer_l1", "cas_vit_xs", "stvit_small"}, proc.stdout


def test_bench_on_a_board_without_torch(tmp_path: Path) -> None:
    """The bench job's command on a board that has numpy and the runtime but no torch."""
    from edgevit.bench.synthetic import conv_stack

    art = tmp_path / "stack2.onnx"
    conv_stack(art, 2)
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx', 'onnxscript', 'torchao', 'skimage', 'PIL'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['edgevit', *sys.argv[1:]]\n"
        "from edgevit.cli import main\n"
        "main()\n"
    )
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-c", blocker, "bench", str(art), "--runs", "3", "--warmup", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(out.read_text())["cases"][0]["ok"]
