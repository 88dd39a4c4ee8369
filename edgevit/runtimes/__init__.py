"""Runtimes behind one interface; importing this package registers each runner module."""
from __future__ import annotations

from edgevit.runtimes.base import (
    Availability,
    Runner,
    RuntimeSpec,
    get_runtime,
    open_runner,
    probe_module,
    register_runtime,
    runtimes,
)

# Each runner module registers itself on import (its runtime package is imported lazily).
from edgevit.runtimes import onnxruntime  # noqa: E402,F401  isort: skip
from edgevit.runtimes import coreml, tensorrt, torchscript_lite  # noqa: E402,F401  isort: skip
from edgevit.runtimes import executorch, ncnn  # noqa: E402,F401  isort: skip
from edgevit.backends import openvino  # noqa: E402,F401  isort: skip  (target + runtime rows)

__all__ = [
    "Availability", "Runner", "RuntimeSpec", "get_runtime", "open_runner", "probe_module",
    "register_runtime", "runtimes",
]
