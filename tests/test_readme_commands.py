"""Every `edgevit` command the README shows, taken from the README itself (never a list kept by hand):
in the default suite each one parses (its command and every option exist); under -m slow each one runs,
in order, in a fresh clone of the repository, with the embedded default (no user files: stand-ins are
made for the two the README names), and either succeeds or, where this machine lacks what it needs (a
CUDA GPU, a board over SSH), ends with one error line."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgevit.cli import app

REPO = Path(__file__).resolve().parents[1]
# Commands that need what this machine cannot have: they must fail cleanly (one error line, exit 1/2).
NEEDS_ELSEWHERE = {
    "--target tensorrt": "a CUDA GPU and TensorRT",
    "--on ": "a board reachable over SSH",
    "--fleet ": "an inventory of boards",
}


def readme_commands() -> list[str]:
    """The `edgevit ...` commands of the README's bash blocks, in order (chains split at &&)."""
    text = (REPO / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
            for part in (p.strip() for p in line.split("&&")):
                if part.startswith("edgevit "):
                    out.append(part)
    return out


def _options(argv: list[str]) -> list[str]:
    return [a.split("=")[0] for a in argv if a.startswith("--")]


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command: str) -> None:
    argv = shlex.split(command)[1:]
    words = [a for a in argv if not a.startswith("-")]
    res = CliRunner().invoke(app, [words[0], "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, f"`edgevit {words[0]}` does not exist: {command}"
    for opt in _options(argv):
        assert opt in res.stdout, f"{command}: `edgevit {words[0]}` has no option {opt}"


def test_readme_shows_the_main_commands() -> None:
    cmds = readme_commands()
    assert any(c.startswith("edgevit export fcaformer_l1 --target onnx --int8") for c in cmds)
    assert {c.split()[1] for c in cmds} >= {"export", "bench", "verify", "models", "regress", "devices", "doctor"}


def _stand_ins(work: Path) -> dict[str, str]:
    """The user files the README names: a checkpoint (seeded weights) and a folder of calibration images."""
    import torch
    from PIL import Image

    from edgevit.models import build_reference
    from edgevit.quantize.data import embedded_photos

    torch.save(build_reference("fcaformer_l1").state_dict(), work / "fcaformer_l1.pth")
    val = work / "imagenet" / "val"
    val.mkdir(parents=True)
    photos = list(embedded_photos().values())
    for i in range(48):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        y, x = (i * 37) % max(1, h // 3), (i * 53) % max(1, w // 3)
        Image.fromarray(p[y: y + 2 * h // 3, x: x + 2 * w // 3]).save(val / f"{i:03d}.jpg")
    return {"~/imagenet/val": str(val)}


def _checkout(work: Path) -> Path:
    """A clone of this repository, as a user runs the README in: `regress --base origin/main` needs the
    ref (set to the commit under test) and `--suite benchmarks/...` the files."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()

    git("clone", "--quiet", str(REPO), str(work))
    git("-C", str(work), "update-ref", "refs/remotes/origin/main", git("-C", str(REPO), "rev-parse", "HEAD"))
    return work


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path: Path) -> None:
    work = _checkout(tmp_path / "work")
    swaps = _stand_ins(work)
    env = dict(os.environ, EDGEVIT_CACHE=str(tmp_path / "cache"), COLUMNS="80", PYTHONPATH=str(REPO))
    code = "import sys; from edgevit.cli import main; sys.argv = ['edgevit', *sys.argv[1:]]; main()"
    failures = []
    for command in readme_commands():
        for old, new in swaps.items():
            command = command.replace(old, new)
        argv = shlex.split(command)[1:]
        proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=work, env=env, capture_output=True,
                              text=True, timeout=1800)
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith(("error:", "internal error:"))]
        elsewhere = next((why for key, why in NEEDS_ELSEWHERE.items() if key in command), None)
        if elsewhere:
            ok = proc.returncode in (1, 2) and len(errors) == 1 and errors[0].startswith("error:")
        else:
            ok = proc.returncode == 0
        if not ok:
            failures.append(f"{command} -> exit {proc.returncode}: {(errors or proc.stderr.splitlines()[-1:])}")
    assert not failures, "\n".join(failures)
