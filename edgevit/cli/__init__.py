"""The `edgevit` command: a thin Typer CLI, one module per command group."""
from __future__ import annotations

from typer.core import TyperCommand

from edgevit.cli.app import EdgeVitCommand, app, run

# Each module adds its commands to `app` on import.
from edgevit.cli import models, targets  # noqa: E402,F401  isort: skip
from edgevit.cli import doctor  # noqa: E402,F401  isort: skip
from edgevit.cli import export, verify  # noqa: E402,F401  isort: skip
from edgevit.cli import bench, regress  # noqa: E402,F401  isort: skip
from edgevit.cli import predict  # noqa: E402,F401  isort: skip

for _command in app.registered_commands:  # one help style for every command (Typer fills in its default)
    if _command.cls in (None, TyperCommand):
        _command.cls = EdgeVitCommand


def main() -> None:
    run()


__all__ = ["app", "main"]
