"""The one declarative targets table: every export target, its artifact suffix, precisions, what
int8 means there, the runtime that runs it and the pip extra that brings it.

It drives CLI choices, argument validation, `edgevit doctor`, the README support matrix and test
parametrisation. Each exporter module registers its own row with `register_target`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from edgevit.runtimes.base import Availability
    from torch import nn

    from edgevit.quantize.data import CalibrationSet

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class ExportRequest:
    """Everything an exporter needs; the pipeline fills it and owns temp names, sidecars and verify."""

    model_name: str
    model: "nn.Module"  # deploy form, eval mode
    example: "torch.Tensor"  # (batch, 3, H, W) float32
    output: Path  # temporary path to write; the pipeline renames it when verified
    precision: str = "fp32"
    img_size: int = 224
    batch: int = 1
    dynamic_batch: bool = False
    opset: int | None = None
    calib: "CalibrationSet | None" = None
    calib_method: str = "minmax"
    preset: str | None = None
    simplify: bool = True
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    options: dict[str, Any] = field(default_factory=dict)  # target-specific extras
    threads: int | None = None  # runtime threads for what the exporter measures (latency-aware int8)


@dataclass
class ExportResult:
    """What an exporter produced: the artifact and facts to record in the sidecar JSON."""

    artifact: Path
    metadata: dict[str, Any] = field(default_factory=dict)


Exporter = Callable[[ExportRequest], ExportResult]


@dataclass(frozen=True)
class Target:
    """One row of the targets table."""

    key: str
    title: str
    suffix: str  # artifact suffix, e.g. ".onnx"; a directory for ".mlpackage"
    precisions: tuple[str, ...]
    int8: str  # what "int8" means on this target, in words (README matrix, --help)
    runtime: str  # runtime key in edgevit.runtimes that loads the artifact ("" if none here)
    extra: str  # pip extra that installs the exporter and runtime
    exporter: Exporter
    default_precision: str = "fp32"
    requires: tuple[str, ...] = ()  # importable modules the exporter needs
    presets: tuple[str, ...] = ()
    dynamic_batch: bool = True
    notes: str = ""
    # static facts about an artifact without running it: node count, op histogram, I/O shapes
    inspect: Callable[[Path], dict[str, Any]] | None = None
    requirement: str = ""  # hardware/OS the exporter needs beyond `requires`, in words ("a CUDA GPU")
    # export-side availability beyond importable `requires` (TensorRT builds only on a CUDA device)
    probe: Callable[[], "Availability"] | None = None


_TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.key in _TARGETS:
        raise ValueError(f"target {target.key!r} is registered twice")
    unknown = set(target.precisions) - set(PRECISIONS)
    if unknown or target.default_precision not in target.precisions:
        raise ValueError(f"target {target.key!r}: bad precisions {target.precisions}")
    _TARGETS[target.key] = target
    return target


def _ensure_loaded() -> None:
    import edgevit.exporters  # noqa: F401  (importing the package registers every target)


def targets() -> dict[str, Target]:
    _ensure_loaded()
    return dict(_TARGETS)


def get_target(key: str) -> Target:
    _ensure_loaded()
    if key not in _TARGETS:
        raise ConfigError(f"unknown target {key!r}; choose one of: {', '.join(sorted(_TARGETS))}")
    return _TARGETS[key]


def check_precision(target: Target, precision: str) -> None:
    """One-line error naming the fix when a target does not offer a precision."""
    if precision not in target.precisions:
        raise ConfigError(
            f"target {target.key!r} has no {precision}; it offers {', '.join(target.precisions)}"
        )


def target_availability(target: Target) -> "Availability":
    """Whether this machine can *export* to a target: its `requires` import and its probe agrees.
    The reason names the fix (the pip extra, or the hardware in `requirement`)."""
    import importlib.util

    from edgevit.runtimes.base import Availability

    missing = [m for m in target.requires if importlib.util.find_spec(m) is None]
    if missing:
        need = f" and {target.requirement}" if target.requirement else ""
        return Availability(False, reason=f"{', '.join(missing)} not installed: pip install 'edgevit[{target.extra}]'{need}")
    if target.probe is not None:
        return target.probe()
    return Availability(True)


def check_available(target: Target) -> None:
    """Raise UnavailableError (one line naming the fix) when this machine cannot export to `target`."""
    from edgevit.errors import UnavailableError

    avail = target_availability(target)
    if not avail.available:
        raise UnavailableError(f"target {target.key} is unavailable here: {avail.reason}")


def target_for_artifact(path: Path) -> Target:
    """The target whose suffix matches an artifact path."""
    _ensure_loaded()
    name = path.name.lower()
    for t in _TARGETS.values():
        if name.endswith(t.suffix):
            return t
    raise ConfigError(f"cannot tell the target of {path.name!r} from its suffix")
