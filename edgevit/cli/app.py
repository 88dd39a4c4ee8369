"""The Typer app and the one place that turns errors into a red one-line message and an exit code."""
from __future__ import annotations

import os
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from edgevit.errors import ConfigError, EdgeVitError

# Piped or captured output (CI logs, files, tests) gets tables at least 160 wide instead of Rich's 80-column
# default, so case names and paths are not cut; a terminal keeps its own width.
_WIDTH = None if os.isatty(1) else max(160, int(os.environ.get("COLUMNS", "0") or 0))

console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

INTERNAL_ERROR_EXIT = 3


class _EdgeVitGroup(TyperGroup):
    """Runs a command; EdgeVitError -> one red line and its exit code, tracebacks only with EDGEVIT_DEBUG=1."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # Typer's own exits and usage errors
            raise
        except EdgeVitError as exc:
            if os.environ.get("EDGEVIT_DEBUG"):
                raise
            # soft_wrap: Rich would otherwise break a long path over lines; the contract is one line
            err_console.print(f"[bold red]error:[/] {escape(_one_line(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: say so in one line, keep the traceback for EDGEVIT_DEBUG=1
            if os.environ.get("EDGEVIT_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {escape(_one_line(exc))} "
                "(rerun with EDGEVIT_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, object]:
    """`KEY=VALUE` options (export --option, bench --runtime-option); values become int, float or bool
    where they read as one, else stay strings."""
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got {item!r}")
        value: object = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        out[key.strip()] = value
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


app = typer.Typer(
    cls=_EdgeVitGroup,
    name="edgevit",
    help="Efficient vision transformers: checkpoint -> deploy form -> verified edge artifact -> benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
