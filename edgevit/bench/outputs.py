"""The files a bench run writes (JSON with raw samples, CSV, Markdown, plot): checked before anything is
measured, written after, and never lost: when a path fails at the end anyway (a full disk, a folder
removed meanwhile), the file goes to edgevit's cache folder instead and the run says where.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgevit.errors import EdgeVitError, OutputError
from edgevit.files import check_writable

if TYPE_CHECKING:
    from edgevit.bench.api import BenchResults

KINDS = ("json", "csv", "markdown", "plot")


@dataclass(frozen=True)
class Outputs:
    """Where each kind of output goes: a file, or a folder (a trailing '/' or an existing directory)."""

    json: str | None = None
    csv: str | None = None
    markdown: str | None = None
    plot: str | None = None

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k in KINDS if (v := getattr(self, k)) is not None]


def is_folder(target: str) -> bool:
    return Path(target).is_dir() or str(target).endswith(("/", "\\"))


def check(outputs: Outputs) -> None:
    """Prove every output can be written, before a long run: the folder exists (created) and takes a file."""
    for kind, target in outputs.items():
        p = Path(target).expanduser()
        if not is_folder(target) and p.is_dir():
            raise OutputError(f"--{kind} {target} is a directory; end it with / to write into it")
        check_writable(p if is_folder(target) else p.parent)


def _writer(kind: str) -> Callable[["BenchResults", Path], Path]:
    from edgevit.bench import tables

    if kind == "plot":
        from edgevit.bench.plots import plot

        return plot
    return {"json": tables.write_json, "csv": tables.write_csv, "markdown": tables.write_markdown}[kind]


def _fallback_folder() -> Path:
    from edgevit.cache import cache_dir

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return cache_dir() / "unsaved-results" / stamp


def write(results: "BenchResults", outputs: Outputs) -> list[str]:
    """Write every output; the lines to show (wrote X / could not write X, saved as Y instead)."""
    lines = []
    for kind, target in outputs.items():
        try:
            lines.append(f"wrote {_writer(kind)(results, target)}")
        except EdgeVitError as exc:
            folder = _fallback_folder()
            try:
                saved = _writer(kind)(results, f"{folder}/")
            except EdgeVitError:
                lines.append(f"could not write {target} ({exc}), nor a copy in {folder}")
                continue
            lines.append(f"could not write {target} ({exc}); the {kind} results are in {saved}")
    return lines
