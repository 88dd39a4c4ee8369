"""Benchmarks under device profiles and the CI latency gate.

Light on import (the worker subprocess imports this package): the public functions load lazily.
`benchmark(...)` measures model names or artifacts, one fresh process per case; `regress(...)`
compares a result file with a baseline; `load_profile`/`list_profiles` read `device_profiles/`.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "benchmark": "edgevit.bench.api",
    "BenchResults": "edgevit.bench.api",
    "load_results": "edgevit.bench.api",
    "plan": "edgevit.bench.api",
    "run_suite": "edgevit.bench.suites",
    "load_suite": "edgevit.bench.suites",
    "regress": "edgevit.bench.regress",
    "RegressReport": "edgevit.bench.regress",
    "load_profile": "edgevit.bench.profiles",
    "list_profiles": "edgevit.bench.profiles",
    "detect_host": "edgevit.bench.profiles",
    "DeviceProfile": "edgevit.bench.profiles",
    "Protocol": "edgevit.bench.protocol",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgevit.bench' has no attribute {name!r}")


__all__ = list(_LAZY)
