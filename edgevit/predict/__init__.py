"""Latency prediction for devices you do not have (issue 17): per-layer cost features of the deployed
graph, a non-negative cost model per (device, runtime, threads, precision) fitted on published or
measured whole-network latencies, leave-one-out intervals and extrapolation warnings.

Public API (imported lazily): predict, prediction_for_case, available, describe_available,
calibrate_host, refit, compare_predicted.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "predict": "edgevit.predict.api",
    "prediction_for_case": "edgevit.predict.api",
    "available": "edgevit.predict.api",
    "describe_available": "edgevit.predict.api",
    "Prediction": "edgevit.predict.api",
    "calibrate_host": "edgevit.predict.calibrate",
    "refit": "edgevit.predict.boards",
    "compare_predicted": "edgevit.predict.gate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgevit.predict' has no attribute {name!r}")


__all__ = list(_LAZY)
