"""Prediction records as JSON and Markdown files (like bench: a file, or a folder that gets a named file)."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgevit.predict.api import SCHEMA, Prediction
from edgevit.predict.data import write_json


def document(preds: Sequence[Prediction]) -> dict[str, Any]:
    """The JSON file format: schema, creation time and one record per prediction."""
    return {"schema": SCHEMA, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "predictions": [p.to_dict() for p in preds]}


def stem(preds: Sequence[Prediction]) -> str:
    p = preds[0]
    return f"predict_{p.device}_{p.runtime}_t{p.threads}_{p.precision}"


def output_path(target: str | Path, preds: Sequence[Prediction], suffix: str) -> Path:
    p = Path(target)
    if str(target).endswith(("/", "\\")) or p.is_dir():
        return p / f"{stem(preds)}{suffix}"
    return p


def write_json_file(preds: Sequence[Prediction], target: str | Path) -> Path:
    return write_json(output_path(target, preds, ".json"), document(preds))


def markdown(preds: Sequence[Prediction]) -> str:
    """A table of predictions, then each one's calibration, extrapolation warnings and notes."""
    lines = ["| model | device | runtime | threads | precision | predicted ms | 80% interval ms | extrapolates |",
             "|---|---|---|---:|---|---:|---:|---|"]
    for p in preds:
        lo, hi = p.interval_ms
        lines.append(f"| {p.model} | {p.device} | {p.runtime} | {p.threads} | {p.precision} | {p.predicted_ms:.1f} | "
                     f"{lo:.1f}-{hi:.1f} | {'yes' if p.extrapolates else 'no'} |")
    lines.append("")
    lines.append("Predicted, not measured: figures for the named device from its cost model.")
    for p in preds:
        lines.append("")
        lines.append(f"**{p.model}** on {p.device}: {p.calibration}.")
        lines.extend(f"- extrapolates: {w}" for w in p.extrapolation)
        lines.extend(f"- note: {n}" for n in p.notes)
    return "\n".join(lines) + "\n"


def write_markdown_file(preds: Sequence[Prediction], target: str | Path) -> Path:
    path = output_path(target, preds, ".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(markdown(preds))
    tmp.replace(path)
    return path
