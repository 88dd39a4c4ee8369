"""The README stays true: its support matrix is the targets table, its test command is what CI runs."""
from __future__ import annotations

import re
from pathlib import Path

from edgevit.backends.matrix import MATRIX_END, MATRIX_START, support_matrix_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_support_matrix_matches_targets_table():
    block = README.split(MATRIX_START, 1)[1].split(MATRIX_END, 1)[0].strip()
    assert block == support_matrix_markdown(), "regenerate with `edgevit targets --markdown`"


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    commands = re.findall(r"```bash\n(pip install [^\n]+)\n```", README)
    assert len(commands) >= 2
    main_job, tests = commands[0], commands[1]
    assert "edgevit export" in main_job and "-c constraints.txt" in main_job
    assert "pytest" in tests and "-c constraints.txt" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-c constraints.txt -e \".[dev]\"" in ci and "pytest" in ci
