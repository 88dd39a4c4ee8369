"""The predictor's shipped data (package data under `edgevit/predict/data/`) and this machine's own
calibrations (under the edgevit cache), read and written as plain JSON.

- `ncnn_benchmark.json`: published benchncnn latencies per board with their source, and the features
  our code computed from the benchmark networks (built by `benchmarks/ncnn_board_data.py`).
- `predictors.json`: the board cost models fitted on it (`edgevit calibrate --refit` rebuilds it).
- `<cache>/predict/*.json`: host calibrations (`edgevit calibrate --device host`).
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgevit.errors import ConfigError

DATA_DIR = Path(__file__).resolve().parent / "data"
BENCHMARK_FILE = DATA_DIR / "ncnn_benchmark.json"
PREDICTORS_FILE = DATA_DIR / "predictors.json"
BENCHMARK_SCHEMA = "edgevit.predict.ncnn_benchmark/1"
PREDICTORS_SCHEMA = "edgevit.predict.predictors/1"
HOST_SCHEMA = "edgevit.predict.host/1"


def read_json(path: Path, schema: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise ConfigError(f"{path}: not a {schema} file (schema {data.get('schema') if isinstance(data, dict) else None!r})")
    return data


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write to a temporary name in the same folder, then rename (no half-written file is ever read)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
    return path


@lru_cache(maxsize=4)
def _benchmark(path: str) -> dict[str, Any]:
    return read_json(Path(path), BENCHMARK_SCHEMA)


def benchmark_data(path: Path | None = None) -> dict[str, Any]:
    """The shipped ncnn board tables and network features."""
    return _benchmark(str(path or BENCHMARK_FILE))


def board_ids() -> list[str]:
    """Boards with published figures (what a device profile's `predict_board` may name)."""
    return sorted(benchmark_data()["boards"])


@lru_cache(maxsize=4)
def _predictors(path: str, mtime: float) -> dict[str, Any]:
    return read_json(Path(path), PREDICTORS_SCHEMA)


def predictors_data(path: Path | None = None) -> dict[str, Any]:
    p = Path(path or PREDICTORS_FILE)
    if not p.is_file():
        raise ConfigError(f"no fitted predictors at {p}: run `edgevit calibrate --refit`")
    return _predictors(str(p), p.stat().st_mtime)


def host_dir() -> Path:
    """Where host calibrations live: <edgevit cache>/predict."""
    from edgevit.cache import cache_dir

    return cache_dir() / "predict"


def host_files() -> list[Path]:
    d = host_dir()
    return sorted(d.glob("host_*.json")) if d.is_dir() else []
