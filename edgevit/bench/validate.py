"""Check a bench result file's shape before anything reads it, so a malformed file is one user error.

The gate and the plots read `edgevit.bench/1` JSON written by `edgevit bench --json`; a hand-edited,
truncated or foreign file must end in one `ConfigError` line naming the file and the field (exit 2),
never a KeyError deep in the comparison (exit 3).
"""
from __future__ import annotations

import math
from typing import Any

from edgevit.errors import ConfigError

SCHEMA = "edgevit.bench/1"
_TOP = {"setup": dict, "host": dict, "versions": dict, "cases": list}
_CASE = {"id": str, "artifact": str, "runtime": str, "target": str, "precision": str, "threads": int}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def check_results(data: Any, where: str) -> None:
    """Raise ConfigError('<where>: ...') unless `data` is a bench result the readers can use."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a bench result is a JSON object, got {_kind(data)}")
    if data.get("schema") != SCHEMA:
        raise ConfigError(f"{where}: not an edgevit bench result (schema {data.get('schema')!r}, expected {SCHEMA!r})")
    for key, kind in _TOP.items():
        if not isinstance(data.get(key), kind):
            raise ConfigError(f"{where}: field {key!r} must be {_kind(kind())}, got {_kind(data.get(key))}")
    if not isinstance(data["setup"].get("profile"), str):
        raise ConfigError(f"{where}: setup.profile must be a profile name")
    for i, case in enumerate(data["cases"]):
        _check_case(case, f"{where}: cases[{i}]")


def _check_case(case: Any, where: str) -> None:
    if not isinstance(case, dict) or not isinstance(case.get("case"), dict):
        raise ConfigError(f"{where} must be an object with a 'case' object")
    spec = case["case"]
    for key, kind in _CASE.items():
        if not isinstance(spec.get(key), kind) or isinstance(spec.get(key), bool):
            raise ConfigError(f"{where}: case.{key} must be {kind.__name__}, got {spec.get(key)!r}")
    where = f"{where} ({spec['id']})"
    if not isinstance(case.get("ok"), bool):
        raise ConfigError(f"{where}: 'ok' must be true or false")
    samples = case.get("samples_ms", [])
    if not isinstance(samples, list):
        raise ConfigError(f"{where}: samples_ms must be a list of numbers, got {_kind(samples)}")
    bad = next((s for s in samples if isinstance(s, bool) or not isinstance(s, (int, float))
                or not math.isfinite(s) or s <= 0), None)
    if bad is not None:
        raise ConfigError(f"{where}: samples_ms must be positive numbers (ms), found {bad!r}")
    if case["ok"] and not samples:
        raise ConfigError(f"{where}: a measured case has no samples (samples_ms is empty)")
    for key in ("stats", "stability", "conditions"):
        if key in case and not isinstance(case[key], dict):
            raise ConfigError(f"{where}: {key} must be an object, got {_kind(case[key])}")
