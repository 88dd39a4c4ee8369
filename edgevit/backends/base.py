"""What every backend implements: the export contract (ExportRequest -> ExportResult) and the runner
interface (load, infer, close), plus Availability for targets and runtimes that may be missing here.

Runners import their runtime package lazily: a missing package makes the runtime *unavailable* with
the pip extra that installs it; it never breaks importing edgevit or starting the CLI.
"""
from __future__ import annotations

import abc
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.versions import package_version

if TYPE_CHECKING:  # nothing heavy at import: a board's `facts` runs without numpy
    import numpy as np
    import torch
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
    threads: int | None = None  # what int8 selection measures with (the export's threads)
    int8_force: bool = False  # ship int8 even where it measured slower than fp32 (--int8-force)
    trained_weights: bool = False  # a checkpoint was given: top-1 agreement is meaningful


@dataclass
class ExportResult:
    """What an exporter produced: the artifact and facts to record in the sidecar JSON."""

    artifact: Path
    metadata: dict[str, Any] = field(default_factory=dict)


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


def probe_module(module: str, extra: str, dist: str | None = None) -> Availability:
    """Availability of a runtime that needs one importable package (found without importing it)."""
    if importlib.util.find_spec(module) is None:
        return Availability(False, reason=f"{module} is not installed: pip install 'edgevit[{extra}]'")
    return Availability(True, package_version(dist or module))
