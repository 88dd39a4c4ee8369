"""`--runtime auto`: the fastest measured path per model that meets the accuracy budget.

Each candidate is a (runtime, precision) case of the same model, measured in the same run; a candidate
qualifies when its artifact verified against PyTorch and, below fp32, its mean cosine on the real photos
reaches the budget (fp32 artifacts meet the conformance bound by passing verification). The choice and
every candidate's figures are recorded, so `export --target best` can store them in the sidecar.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgevit.bench.api import BenchResults
    from edgevit.bench.runner import CaseResult

COSINE_BUDGET = 0.995  # mean cosine to PyTorch on the real photos that fp16/int8 candidates must reach


@dataclass
class Candidate:
    case: str
    runtime: str
    target: str
    precision: str
    median_ms: float | None
    cosine: float | None
    qualifies: bool
    why_not: str = ""


@dataclass
class Choice:
    """The fastest qualifying candidate of one model, and all candidates with their figures."""

    model: str
    chosen: Candidate | None
    candidates: list[Candidate] = field(default_factory=list)
    budget: float = COSINE_BUDGET

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _judge(r: "CaseResult", budget: float) -> Candidate:
    c, ver = r.case, r.case.verified or {}
    cosine = ver.get("cosine")
    why = ("did not run: " + r.error) if not r.ok else ""
    if not why and not ver.get("executed"):
        why = "not verified against PyTorch"
    elif not why and not ver.get("passed"):
        why = "failed verification"
    elif not why and c.precision != "fp32" and (cosine is None or cosine < budget):
        why = f"cosine {cosine:.5f} < budget {budget}" if cosine is not None else "no cosine recorded"
    return Candidate(c.id, c.runtime, c.target, c.precision, r.stats.get("median") if r.ok else None, cosine,
                     not why, why)


def choose(results: "BenchResults", budget: float = COSINE_BUDGET) -> dict[str, Choice]:
    """Per model: every measured candidate judged, and the fastest that qualifies (None if none does)."""
    out: dict[str, Choice] = {}
    for r in results.cases:
        if r.case.reference or not r.case.model:
            continue
        choice = out.setdefault(r.case.model, Choice(r.case.model, None, budget=budget))
        choice.candidates.append(_judge(r, budget))
    for choice in out.values():
        ok = [c for c in choice.candidates if c.qualifies]
        choice.chosen = min(ok, key=lambda c: c.median_ms or float("inf")) if ok else None
    return out


def summary_line(choice: Choice) -> str:
    """One line per model: what wins and by how much over the next qualifying candidate."""
    if choice.chosen is None:
        return f"{choice.model}: no candidate meets the budget (" + "; ".join(
            f"{c.runtime} {c.precision}: {c.why_not}" for c in choice.candidates) + ")"
    rest = sorted((c for c in choice.candidates if c.qualifies and c is not choice.chosen),
                  key=lambda c: c.median_ms or float("inf"))
    lead = f", {rest[0].median_ms / choice.chosen.median_ms:.2f}x faster than {rest[0].runtime} {rest[0].precision}" \
        if rest and rest[0].median_ms and choice.chosen.median_ms else ""
    cos = f", cosine {choice.chosen.cosine:.4f}" if choice.chosen.cosine is not None else ""
    return (f"{choice.model}: fastest within the accuracy budget is {choice.chosen.runtime} {choice.chosen.precision} "
            f"({choice.chosen.median_ms:.2f} ms{cos}{lead})")


def export_best(model: str, *, device: str = "host", output: str | None = None, precisions: list[str] | None = None,
                threads: int | None = None, protocol: Any = None) -> Any:
    """`edgevit export MODEL --target best --device PROFILE`: measure every candidate runtime of the
    profile here (exports cached and verified), then write the fastest one that meets the accuracy budget to
    `output`, its record holding the choice and every candidate's measurement. Returns that ExportReport."""
    from edgevit.artifact import read_record, sidecar_path, write_record
    from edgevit.backends import get_backend
    from edgevit.bench.api import AUTO, plan, run_plan
    from edgevit.bench.protocol import Protocol
    from edgevit.errors import ExportError
    from edgevit.export import ExportReport, default_name, resolve_output
    from edgevit.files import atomic_path
    from edgevit.models import resolve_name

    name = resolve_name(model)
    p = plan([name], profile=device, runtime=AUTO, precision=precisions, threads=threads)
    res = run_plan(p, protocol or Protocol(runs=30, min_seconds=1.0))
    choice = choose(res)[name]
    if choice.chosen is None:
        raise ExportError(summary_line(choice))
    case = next(r.case for r in res.cases if r.case.id == choice.chosen.case)
    backend = get_backend(case.target)
    final = resolve_output(output, default_name(name, case.precision, backend.suffix), backend.suffix)
    record = read_record(Path(case.artifact))
    record.artifact = final.name
    record.export["choice"] = {**choice.to_dict(), "profile": res.setup["profile"], "threads": res.setup["threads"],
                               "on_device": res.setup["on_device"], "measured_on": res.host.get("cpu"),
                               "load_average": res.load_average, "why": summary_line(choice)}
    with atomic_path(final) as tmp:
        _copy(Path(case.artifact), tmp)
    write_record(record, sidecar_path(final))
    return ExportReport(artifact=final, sidecar=sidecar_path(final), record=record, verification=None,
                        warnings=[summary_line(choice)])


def _copy(src: Path, dst: Path) -> None:
    import shutil

    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
