"""One small interface for every runtime (load, infer, close) and the runtime registry.

Runtimes import their packages lazily: a missing package makes the runtime *unavailable* with the
pip extra that installs it, it never breaks importing edgevit or starting the CLI.
"""
from __future__ import annotations

import abc
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit.errors import ConfigError, UnavailableError


@dataclass(frozen=True)
class Availability:
    available: bool
    version: str = ""
    reason: str = ""  # why not, and the fix ("pip install 'edgevit[onnx]'")


class Runner(abc.ABC):
    """Runs one artifact: `load` once, `infer` many times on NCHW float32 arrays, `close` at the end."""

    key: str = ""
    option_keys: tuple[str, ...] = ()  # the runner options this runtime reads (bench -O KEY=VALUE)

    def __init__(self, *, threads: int | None = None, **options: object) -> None:
        self.threads = threads
        self.options = options

    @abc.abstractmethod
    def load(self, path: Path) -> None: ...

    @abc.abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def close(self) -> None:
        """Release the session; default does nothing."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class RuntimeSpec:
    key: str
    title: str
    extra: str
    runner: type[Runner]
    probe: Callable[[], Availability]
    # facts `edgevit doctor` shows beside the version (e.g. devices), asked only when available
    describe: Callable[[], dict[str, str]] | None = None
    reads: tuple[str, ...] = ()  # other targets whose artifacts this runtime also runs (e.g. "onnx")


_RUNTIMES: dict[str, RuntimeSpec] = {}


def register_runtime(spec: RuntimeSpec) -> RuntimeSpec:
    if spec.key in _RUNTIMES:
        raise ValueError(f"runtime {spec.key!r} is registered twice")
    _RUNTIMES[spec.key] = spec
    return spec


def probe_module(module: str, extra: str, dist: str | None = None) -> Availability:
    """Availability of a runtime that needs one importable package (without importing it)."""
    if importlib.util.find_spec(module) is None:
        return Availability(False, reason=f"{module} is not installed: pip install 'edgevit[{extra}]'")
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(dist or module)
    except PackageNotFoundError:
        ver = ""
    return Availability(True, ver)


def _ensure_loaded() -> None:
    import edgevit.runtimes  # noqa: F401


def runtimes() -> dict[str, RuntimeSpec]:
    _ensure_loaded()
    return dict(_RUNTIMES)


def get_runtime(key: str) -> RuntimeSpec:
    _ensure_loaded()
    if key not in _RUNTIMES:
        raise ConfigError(f"unknown runtime {key!r}; choose one of: {', '.join(sorted(_RUNTIMES))}")
    return _RUNTIMES[key]


def open_runner(key: str, path: Path, *, threads: int | None = None, **options: object) -> Runner:
    """Load an artifact in a runtime, or raise UnavailableError naming what to install."""
    spec = get_runtime(key)
    avail = spec.probe()
    if not avail.available:
        raise UnavailableError(f"runtime {key} is unavailable: {avail.reason}")
    runner = spec.runner(threads=threads, **options)
    runner.load(Path(path))
    return runner
