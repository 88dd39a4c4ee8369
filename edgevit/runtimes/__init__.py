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

__all__ = [
    "Availability", "Runner", "RuntimeSpec", "get_runtime", "open_runner", "probe_module",
    "register_runtime", "runtimes",
]
