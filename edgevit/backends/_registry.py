"""The backend registry: one row per export target, carrying the runtime that runs its artifacts.

Every list of targets, runtimes, suffixes, precisions, presets and calibration methods (CLI choices,
profile validation, doctor, the README matrix, bench planning) is derived from these rows. Built-in
backends are the subpackages of `edgevit.backends` (one folder each); third-party backends register
through the `edgevit.backends` entry-point group (see CONTRIBUTING.md).
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevit.backends.base import PRECISIONS, Availability, ExportRequest, ExportResult, Runner
from edgevit.errors import ConfigError, UnavailableError

ENTRY_POINT_GROUP = "edgevit.backends"
Exporter = Callable[[ExportRequest], ExportResult]


@dataclass(frozen=True)
class Runtime:
    """A runtime that loads and runs artifacts on this machine (or a board) through one Runner class."""

    key: str
    title: str
    runner: type[Runner]
    probe: Callable[[], Availability]
    extra: str  # pip extra that installs it
    dists: tuple[str, ...] = ()  # distributions whose versions shape its numbers (recorded in results)
    also_runs: tuple[str, ...] = ()  # suffixes of other targets' artifacts it loads too (OpenVINO: .onnx)
    describe: Callable[[], dict[str, Any]] | None = None  # extra facts for doctor (devices, ISA, ...)

    @property
    def option_keys(self) -> tuple[str, ...]:
        return self.runner.option_keys


@dataclass(frozen=True)
class Backend:
    """One export target: its artifact, precisions, exporter, static inspection and its runtime."""

    key: str
    title: str
    suffix: str  # artifact suffix, e.g. ".onnx"; artifacts such as ".mlpackage" are directories
    precisions: tuple[str, ...]
    int8: str  # what "int8" means on this target, in words (README matrix, --help)
    extra: str  # pip extra that installs the exporter and runtime
    export: Exporter
    runtime: Runtime | None = None
    default_precision: str = "fp32"
    requires: tuple[str, ...] = ()  # importable modules the exporter needs
    presets: tuple[str, ...] = ()  # int8 presets (`--preset`)
    calib_methods: tuple[str, ...] = ("minmax",)  # activation-range methods its int8 offers
    dynamic_batch: bool = True
    opsets: tuple[int, int] | None = None  # ONNX opsets `--opset` may ask for (targets built from ONNX)
    notes: str = ""
    inspect: Callable[[Path], dict[str, Any]] | None = None  # static facts: nodes, op histogram, I/O
    requirement: str = ""  # hardware/OS the exporter needs beyond `requires`, in words ("a CUDA GPU")
    probe: Callable[[], Availability] | None = None  # export-side availability beyond `requires`

    def check_precision(self, precision: str) -> None:
        """One-line error naming what this target offers when it does not offer `precision`."""
        if precision not in self.precisions:
            raise ConfigError(f"target {self.key!r} has no {precision}; it offers {', '.join(self.precisions)}")

    def availability(self) -> Availability:
        """Whether this machine can *export* to this target; the reason names the fix."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            need = f" and {self.requirement}" if self.requirement else ""
            return Availability(False, reason=f"{', '.join(missing)} not installed: "
                                f"pip install 'edgevit[{self.extra}]'{need}")
        return self.probe() if self.probe is not None else Availability(True)

    def check_available(self) -> None:
        avail = self.availability()
        if not avail.available:
            raise UnavailableError(f"target {self.key} is unavailable here: {avail.reason}")


_BACKENDS: dict[str, Backend] = {}
_LOADED = False
PLUGIN_ERRORS: dict[str, str] = {}  # entry point -> why it failed to load (doctor shows them)


def register_backend(backend: Backend) -> Backend:
    """Add one row; loud on a duplicate target, duplicate runtime key or unknown precision."""
    if backend.key in _BACKENDS:
        raise ValueError(f"target {backend.key!r} is registered twice")
    bad = set(backend.precisions) - set(PRECISIONS)
    if bad or backend.default_precision not in backend.precisions:
        raise ValueError(f"target {backend.key!r}: bad precisions {backend.precisions}")
    if backend.runtime is not None:
        for other in _BACKENDS.values():
            if other.runtime is not None and other.runtime.key == backend.runtime.key:
                raise ValueError(f"runtime {backend.runtime.key!r} is registered twice")
    _BACKENDS[backend.key] = backend
    return backend


def _ensure_loaded() -> None:
    """Import every built-in backend folder once, then the installed plugins."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import edgevit.backends as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.ispkg:
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break edgevit; doctor reports it
            PLUGIN_ERRORS[f"{ep.name} ({ep.value})"] = f"{type(exc).__name__}: {exc}"


def backends() -> dict[str, Backend]:
    _ensure_loaded()
    return dict(sorted(_BACKENDS.items()))


def get_backend(key: str) -> Backend:
    _ensure_loaded()
    if key not in _BACKENDS:
        raise ConfigError(f"unknown target {key!r}; choose one of: {', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[key]


def runtimes() -> dict[str, Runtime]:
    """Every registered runtime by key (one per backend that has one)."""
    return {b.runtime.key: b.runtime for b in backends().values() if b.runtime is not None}


def get_runtime(key: str) -> Runtime:
    found = runtimes()
    if key not in found:
        raise ConfigError(f"unknown runtime {key!r}; choose one of: {', '.join(sorted(found))}")
    return found[key]


def backend_for_runtime(runtime: str) -> Backend:
    """The target whose artifacts `runtime` runs natively (what bench exports model names to)."""
    get_runtime(runtime)
    return next(b for b in backends().values() if b.runtime is not None and b.runtime.key == runtime)


def backend_for_artifact(path: Path) -> Backend:
    """The target whose suffix an artifact path ends with (longest suffix first)."""
    name = Path(path).name.lower()
    for b in sorted(backends().values(), key=lambda b: -len(b.suffix)):
        if name.endswith(b.suffix):
            return b
    known = ", ".join(sorted(b.suffix for b in backends().values()))
    raise ConfigError(f"cannot tell the target of {Path(path).name!r} from its suffix (known: {known})")


def runtimes_for_artifact(path: Path) -> list[str]:
    """Runtime keys that can load this artifact: its own target's first, then any that `also_runs` it."""
    own = backend_for_artifact(path)
    keys = [own.runtime.key] if own.runtime is not None else []
    keys += [r.key for r in runtimes().values() if own.suffix in r.also_runs and r.key not in keys]
    return keys


def artifact_suffixes() -> tuple[str, ...]:
    return tuple(sorted({b.suffix for b in backends().values()}, key=lambda s: -len(s)))


def calib_methods() -> tuple[str, ...]:
    """Every calibration method some target offers (CLI choices); each target checks its own."""
    out: list[str] = []
    for b in backends().values():
        out += [m for m in b.calib_methods if m not in out]
    return tuple(out)


def open_runner(key: str, path: Path, *, threads: int | None = None, **options: object) -> Runner:
    """Load an artifact in a runtime, or raise UnavailableError naming what to install."""
    spec = get_runtime(key)
    avail = spec.probe()
    if not avail.available:
        raise UnavailableError(f"runtime {key} is unavailable: {avail.reason}")
    runner = spec.runner(threads=threads, **options)
    runner.load(Path(path))
    return runner
