"""Progress of long library steps (build, deploy, export, calibrate n/N, verify n/N, latency).

The library announces steps here; whoever drives it decides how to show them. The CLI installs a Rich
reporter on stderr (`use_reporter`); library users and tests get the silent default. Notices
(`notice`) are messages a user must see before long work starts, such as the seeded-weights warning.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Protocol


class Reporter(Protocol):
    def start(self, title: str, total: int | None) -> object: ...

    def advance(self, handle: object, n: int) -> None: ...

    def finish(self, handle: object) -> None: ...

    def notice(self, message: str) -> None: ...


class _Silent:
    def start(self, title: str, total: int | None) -> object:
        return None

    def advance(self, handle: object, n: int) -> None:
        return None

    def finish(self, handle: object) -> None:
        return None

    def notice(self, message: str) -> None:
        return None


_REPORTER: ContextVar[Reporter] = ContextVar("edgevit_reporter", default=_Silent())


@contextlib.contextmanager
def use_reporter(reporter: Reporter) -> Iterator[Reporter]:
    """Route every step inside the block to `reporter`."""
    token = _REPORTER.set(reporter)
    try:
        yield reporter
    finally:
        _REPORTER.reset(token)


@contextlib.contextmanager
def step(title: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A named step; the yielded function advances it by n of `total` (a spinner when total is None)."""
    reporter = _REPORTER.get()
    handle = reporter.start(title, total)
    try:
        yield lambda n=1: reporter.advance(handle, n)
    finally:
        reporter.finish(handle)


def notice(message: str) -> None:
    """A message the user must see now (before the long work it concerns), e.g. a weights warning."""
    _REPORTER.get().notice(message)
