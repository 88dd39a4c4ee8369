"""Backends: one folder per export target (export, runner, format reading, target-specific int8),
each registering one `Backend` row that carries the target and its runtime.

Importing this package is light: backends import their SDKs (onnx, ncnn, coremltools, ...) only inside
the functions that need them. The registry loads every subpackage on first use.
"""
from __future__ import annotations

from edgevit.backends._registry import (
    Backend,
    Runtime,
    artifact_suffixes,
    backend_for_artifact,
    backend_for_runtime,
    backends,
    calib_methods,
    get_backend,
    get_runtime,
    open_runner,
    register_backend,
    runtimes,
    runtimes_for_artifact,
)
from edgevit.backends.base import PRECISIONS, Availability, ExportRequest, ExportResult, Runner, probe_module

__all__ = [
    "PRECISIONS", "Availability", "Backend", "ExportRequest", "ExportResult", "Runner", "Runtime",
    "artifact_suffixes", "backend_for_artifact", "backend_for_runtime", "backends", "calib_methods",
    "get_backend", "get_runtime", "open_runner", "probe_module", "register_backend", "runtimes",
    "runtimes_for_artifact",
]
