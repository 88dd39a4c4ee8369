"""The zoo at a glance: published figures instantly, and parameters/MACs counted here (computed on
request, then cached by the source of the model's file, so `edgevit models` stays fast)."""
from __future__ import annotations

import contextlib
import json
from typing import Any

from edgevit import progress


def _counts_file() -> Any:
    from edgevit.cache import cache_dir

    return cache_dir() / "counts.json"


def _load_counts() -> dict[str, Any]:
    try:
        data = json.loads(_counts_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _count(name: str) -> dict[str, Any]:
    from edgevit.models import create_model, model_info
    from edgevit.models._macs import count_macs, count_params

    size = int(model_info(name).default_cfg["img_size"])
    model = create_model(name)
    return {"params_m": round(count_params(model) / 1e6, 3), "gmacs": round(count_macs(model, size) / 1e9, 3)}


def summaries(names: list[str], *, count: bool = False) -> list[dict[str, Any]]:
    """One row per model: family, published params/GMACs/top-1, and counted params/GMACs where known
    (all of them with `count`, which builds each model once and caches the result)."""
    from edgevit.cache import source_digest
    from edgevit.files import atomic_write_json
    from edgevit.models import model_info

    cached = _load_counts()
    rows = []
    quiet = contextlib.nullcontext(lambda n=1: None)
    with progress.step("count parameters and MACs", total=len(names)) if count else quiet as advance:
        for name in names:
            info = model_info(name)
            digest = source_digest(info.name)
            hit = cached.get(info.name) if (cached.get(info.name) or {}).get("source") == digest else None
            if hit is None and count:
                hit = {**_count(info.name), "source": digest}
                cached[info.name] = hit
            if count:
                advance(1)
            rows.append({
                "name": info.name, "family": info.family, "aliases": list(info.aliases),
                "official_checkpoint": info.official, "img_size": info.default_cfg["img_size"],
                "published": {"params_m": info.params_m, "gmacs": info.gmacs, "top1": info.top1},
                "paper": info.paper, "params_m": (hit or {}).get("params_m"), "gmacs": (hit or {}).get("gmacs"),
            })
    if count:
        atomic_write_json(_counts_file(), cached)
    return rows
