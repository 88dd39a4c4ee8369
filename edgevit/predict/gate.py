"""The predicted-latency gate: compare a device's *predicted* latencies of base and head exports.

Pure code over artifacts (no device, no timing noise): the same cost model prices both graphs, so a
change that adds work on the device (a Reshape-Gemm-Reshape around every linear, an extra transpose,
a dense conv where a depthwise one was) moves the prediction and fails the gate deterministically,
while identical graphs give a ratio of exactly 1. Artifacts are paired by model name (sidecar `model`,
else the artifact's name) across the two folders.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgevit.errors import ConfigError

DEFAULT_TOLERANCE = 0.05  # deterministic, so tight: 5 % more predicted time is a regression
DEFAULT_FLOOR_MS = 0.5


@dataclass
class GateCase:
    model: str
    verdict: str  # regression | improvement | ok | missing | new
    base_ms: float | None = None
    head_ms: float | None = None
    ratio: float | None = None
    base_artifact: str = ""
    head_artifact: str = ""
    changed_terms: dict[str, float] = field(default_factory=dict)  # term -> head - base ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateReport:
    device: str
    predictor: str
    tolerance: float
    floor_ms: float
    cases: list[GateCase]

    @property
    def failed(self) -> bool:
        return any(c.verdict == "regression" for c in self.cases)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "predictor": self.predictor, "tolerance": self.tolerance,
                "floor_ms": self.floor_ms, "failed": self.failed, "cases": [c.to_dict() for c in self.cases]}


def _artifacts(folder: Path) -> dict[str, Path]:
    """Model name -> artifact for every ncnn folder/.param and .onnx in `folder` (not recursive)."""
    from edgevit.predict.api import _model_name

    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder of artifacts")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if (p.is_dir() and (p / "model.param").is_file()) or p.suffix in (".param", ".onnx"):
            name = _model_name(p)
            if name in found:
                raise ConfigError(f"{folder}: two artifacts for model {name!r} ({found[name].name}, {p.name})")
            found[name] = p
    if not found:
        raise ConfigError(f"{folder}: no ncnn or ONNX artifacts")
    return found


def compare_predicted(base: Path, head: Path, *, device: str, runtime: str | None = None,
                      threads: int | None = None, precision: str | None = None,
                      tolerance: float = DEFAULT_TOLERANCE, floor_ms: float = DEFAULT_FLOOR_MS,
                      models: Sequence[str] | None = None) -> GateReport:
    """Predict every paired artifact of `base` and `head` on `device` and judge head against base."""
    from edgevit.bench.profiles import load_profile
    from edgevit.predict.api import artifact_features, choose_model

    if tolerance <= 0:
        raise ConfigError(f"tolerance must be > 0, got {tolerance}")
    profile = load_profile(device)
    model, _ = choose_model(profile, runtime=runtime, threads=threads, precision=precision)
    b, h = _artifacts(Path(base)), _artifacts(Path(head))
    names = sorted(set(b) | set(h)) if models is None else list(models)
    cases = []
    for name in names:
        if name not in h:
            cases.append(GateCase(name, "missing", base_artifact=str(b.get(name, ""))))
            continue
        if name not in b:
            cases.append(GateCase(name, "new", head_artifact=str(h[name])))
            continue
        fb, fh = artifact_features(b[name]), artifact_features(h[name])
        if model.precision == "int8":
            from edgevit.predict.costmodel import quantized_features

            fb, fh = quantized_features(fb), quantized_features(fh)
        tb, th = model.term_ms(fb), model.term_ms(fh)
        base_ms, head_ms = sum(tb.values()), sum(th.values())
        ratio = head_ms / base_ms if base_ms > 0 else float("inf")
        delta = head_ms - base_ms
        if ratio > 1 + tolerance and delta > floor_ms:
            verdict = "regression"
        elif ratio < 1 / (1 + tolerance) and -delta > floor_ms:
            verdict = "improvement"
        else:
            verdict = "ok"
        changed = {t: round(th.get(t, 0.0) - tb.get(t, 0.0), 3) for t in sorted(set(tb) | set(th))
                   if abs(th.get(t, 0.0) - tb.get(t, 0.0)) > 1e-9}
        cases.append(GateCase(name, verdict, round(base_ms, 3), round(head_ms, 3), round(ratio, 4), str(b[name]),
                              str(h[name]), changed))
    return GateReport(device=profile.name, predictor=model.key, tolerance=tolerance, floor_ms=floor_ms, cases=cases)


def predicted_markdown(rep: GateReport) -> str:
    """The Markdown report of `regress --predicted` (a CI job summary)."""
    bad = [c.model for c in rep.cases if c.verdict == "regression"]
    head = f"**{len(bad)} predicted regression(s): {', '.join(bad)}**" if bad else "no predicted regression"
    lines = [f"## edgevit predicted latency gate: {rep.device}", "",
             (f"- predictor: {rep.predictor} (predicted, not measured); tolerance {rep.tolerance:.0%} + "
             f"{rep.floor_ms:g} ms"), f"- {head}", "",
             "| model | base ms | head ms | ratio | verdict | changed terms (ms) |", "|---|---:|---:|---:|---|---|"]
    for c in rep.cases:
        terms = ", ".join(f"{t} {d:+.2f}" for t, d in sorted(c.changed_terms.items(), key=lambda kv: -abs(kv[1]))[:3])
        cells = [c.model, _ms(c.base_ms), _ms(c.head_ms), "—" if c.ratio is None else f"{c.ratio:.3f}", c.verdict,
                 terms or "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"
