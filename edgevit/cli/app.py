"""The Typer app, the one error edge (EdgeVitError -> one red line and its exit code) and shared helpers.

Tracebacks only with EDGEVIT_DEBUG=1. SIGTERM (CI cancellation, `docker stop`) is handled like Ctrl-C,
so every temporary file is removed on the way out. Progress of long steps goes to stderr.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from edgevit.errors import ConfigError, EdgeVitError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

INTERNAL_ERROR_EXIT = 3
INTERRUPT_EXIT = 130  # Ctrl-C
TERMINATED_EXIT = 143  # SIGTERM: 128 + 15, what a shell reports for a terminated process


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so cleanup runs exactly as for Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


class RichReporter:
    """Shows library steps (edgevit.progress) on stderr: a live spinner/bar in a terminal, one line per
    finished step elsewhere (CI logs), and notices as yellow lines the moment they happen."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.live = out.is_terminal
        self._progress: Any = None
        self._depth = 0

    def _bar(self) -> Any:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.out, transient=True)
            self._progress.start()
        return self._progress

    def start(self, title: str, total: int | None) -> object:
        self._depth += 1
        started = time.perf_counter()
        task = self._bar().add_task(title, total=total) if self.live else None
        return (title, started, task)

    def advance(self, handle: object, n: int) -> None:
        _, _, task = handle  # type: ignore[misc]
        if task is not None:
            self._progress.advance(task, n)

    def finish(self, handle: object) -> None:
        title, started, task = handle  # type: ignore[misc]
        self._depth -= 1
        if task is not None:
            self._progress.remove_task(task)
        self.out.print(f"[dim]✓ {escape(title)} ({time.perf_counter() - started:.1f} s)[/]")
        if self._depth == 0 and self._progress is not None:
            self._progress.stop()
            self._progress = None

    def notice(self, message: str) -> None:
        self.out.print(f"[bold yellow]note:[/] {escape(message)}", soft_wrap=True)


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """Route the library's progress and notices to stderr for one command."""
    from edgevit import progress
    from edgevit.export import RandomWeightsWarning

    with progress.use_reporter(RichReporter(err_console)), warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # shown as a notice before the work starts
        yield


def _fit_consoles() -> None:
    """Width for this command: $COLUMNS, else the terminal's, else 80 (tables are made to fit 80)."""
    import shutil

    for c in (console, err_console):
        c.width = int(os.environ.get("COLUMNS") or 0) or shutil.get_terminal_size((80, 24)).columns


class _EdgeVitGroup(TyperGroup):
    """Runs a command; EdgeVitError -> one red line and its exit code, tracebacks only with EDGEVIT_DEBUG=1."""

    def invoke(self, ctx: typer.Context) -> Any:
        _fit_consoles()
        try:
            with reporting():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # Typer's own exits and usage errors
            raise
        except EdgeVitError as exc:
            if os.environ.get("EDGEVIT_DEBUG"):
                raise
            error_line(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            term = isinstance(exc, Terminated)
            err_console.print(f"[red]{'terminated (SIGTERM)' if term else 'interrupted'}[/]: partial files removed")
            raise typer.Exit(TERMINATED_EXIT if term else INTERRUPT_EXIT) from None
        except Exception as exc:  # a bug: say so in one line, keep the traceback for EDGEVIT_DEBUG=1
            if os.environ.get("EDGEVIT_DEBUG"):
                raise
            err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(one_line(exc))} "
                              "(a bug in edgevit; rerun with EDGEVIT_DEBUG=1 for the traceback)", soft_wrap=True)
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None


class EdgeVitCommand(TyperCommand):
    """Help without Typer's `<type>` label after argument names: their metavar already says what goes there."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        import re

        super().format_help(ctx, formatter)
        label = re.compile(r"(?m)^(\s+[A-Z][\w|.]*) <[\w\[\]|, .]+>")
        formatter.buffer[:] = [label.sub(r"\1", chunk) for chunk in formatter.buffer]


def error_line(exc: BaseException) -> None:
    """The one red line every user error ends with (soft_wrap: Rich must not break a long path)."""
    err_console.print(f"[bold red]error:[/] {escape(one_line(exc))}", soft_wrap=True)


def one_line(exc: BaseException) -> str:
    """The message of an error on one line, without terminal escape codes."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", str(exc)).strip() or type(exc).__name__
    return " ".join(text.split())


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


def _version(value: bool) -> None:
    if value:
        from edgevit import __version__

        typer.echo(f"edgevit {__version__}")
        raise typer.Exit()


app = typer.Typer(
    cls=_EdgeVitGroup,
    name="edgevit",
    help="Efficient vision transformers: checkpoint -> deploy form -> verified edge artifact -> benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags without type noise, metavars where values go, fits 80 columns
)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, metavar="",
                                       help="Print edgevit's version and exit.")) -> None:
    """Efficient vision transformers: checkpoint -> deploy form -> verified edge artifact -> benchmark."""


def run() -> None:
    """Console-script entry: SIGTERM behaves like Ctrl-C (cleanup runs), every temporary file lives in one
    run folder that is removed on the way out, then the Typer app."""
    from edgevit.files import run_tempdir

    with contextlib.suppress(ValueError):  # not the main thread (embedded use): leave signals alone
        signal.signal(signal.SIGTERM, _on_sigterm)
    with run_tempdir():
        app()
