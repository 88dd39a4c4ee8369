"""The `edgevit` command: a thin Typer CLI, one module per command group."""
from __future__ import annotations

from edgevit.cli.app import app, run

# Each module adds its commands to `app` on import.
from edgevit.cli import models, targets  # noqa: E402,F401  isort: skip
from edgevit.cli import doctor  # noqa: E402,F401  isort: skip
from edgevit.cli import export, verify  # noqa: E402,F401  isort: skip
from edgevit.cli import bench, regress  # noqa: E402,F401  isort: skip
from edgevit.cli import predict  # noqa: E402,F401  isort: skip


def main() -> None:
    run()


__all__ = ["app", "main"]
