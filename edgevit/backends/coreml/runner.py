"""Core ML runner: `coremltools.models.MLModel(...).predict`, which exists only on macOS.

Elsewhere the runtime reports itself unavailable ("Core ML runs only on macOS"); exports still work
and are checked statically (see `edgevit.backends.coreml.export.inspect_mlpackage`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgevit.errors import ExportError
from edgevit.backends.base import Availability, Runner, probe_module

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


class CoreMLRunner(Runner):
    """Predicts with an .mlpackage on macOS; option `compute_units` (ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE)."""

    key = "coreml"
    option_keys = ("compute_units",)

    def load(self, path: Path) -> None:
        from edgevit.backends.coreml.export import INPUT_NAME, OUTPUT_NAME, import_coremltools

        ct = import_coremltools()
        units = str(self.options.get("compute_units", "CPU_ONLY"))
        try:
            self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, units))
        except Exception as exc:
            raise ExportError(f"Core ML cannot load {Path(path).name}: {str(exc).strip().splitlines()[0]}") from None
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.model.predict({self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(out[self.output_name], dtype=np.float32)

    def close(self) -> None:
        self.model = None


def probe() -> Availability:
    if sys.platform != "darwin":
        return Availability(False, reason="Core ML runs only on macOS (export and static checks work here)")
    return probe_module("coremltools", "coreml")
