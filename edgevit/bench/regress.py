"""The CI latency gate: compare a bench result with a baseline, case by case, on raw samples.

Pure code over data files (no measuring here). For each case present in both:

1. ratio = median(current) / median(baseline) (or the profile's `statistic`, e.g. p25 on a shared,
   contended machine where interference only ever adds time), with a bootstrap confidence interval obtained by
   resampling both raw sample sets (distributions, not single numbers);
2. if the two files come from different machines (host fingerprint differs) or `normalize="always"`
   (the profile's `gate.normalize`; `host` uses it because its machine's speed drifts with shared load),
   divide by the same ratio of the reference case (`@reference`, a fixed synthetic ONNX model measured
   in the same run), resampled jointly, so a 2x slower CI machine does not read as a 2x regression;
3. verdict: *regression* when the CI lies entirely above 1 and the ratio exceeds 1 + tolerance and the
   median grew by more than the absolute floor (ms); *improvement* symmetrically (ratio below
   1 / (1 + tolerance)), which asks for a baseline refresh so the gate stays tight; else *ok*. Cases only
   in the baseline are *missing*, only in the current file *new*, failed in the current run *error*;
4. a case that would be a regression but was measured on a busy machine (either file's stability
   facts, `edgevit.bench.stability`) is *inconclusive*: the drift could be the machine's.

The gate fails (exit 1) on a regression, an error, an inconclusive case (unless allowed) and a baseline
case missing from the current run (unless `allow_missing`); files with no case in common, or of
different profiles, are one-line errors. `update` refuses to store a baseline from an unstable run
unless forced. The tolerance and floor come from the baseline's device profile (`gate:` in its YAML:
`baseline_tolerance`, else `rel_tolerance`) unless given. The paired gate (`paired_gate`) is the one
CI uses on shared runners; this one serves boards and history.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.errors import ConfigError

if TYPE_CHECKING:
    from edgevit.bench.api import BenchResults

VERDICTS = ("regression", "error", "inconclusive", "improvement", "missing", "new", "ok")
FAILING = ("regression", "error", "inconclusive", "missing")
NORMALIZE = ("auto", "always", "never")


class GateOutcome:
    """What a gate report derives from its cases' verdicts (stored and paired reports alike): which cases
    fail (missing/inconclusive only unless allowed), the exit code, the counts, the JSON form."""

    cases: Sequence[Any]
    allow_missing: bool
    allow_inconclusive: bool

    def _fails(self, c: Any) -> bool:
        if c.verdict == "missing":
            return not self.allow_missing
        if c.verdict == "inconclusive":
            return not self.allow_inconclusive
        return c.verdict in FAILING

    @property
    def failed(self) -> bool:
        return any(self._fails(c) for c in self.cases)

    @property
    def failing(self) -> list[Any]:
        return [c for c in self.cases if self._fails(c)]

    @property
    def wins(self) -> list[Any]:
        return [c for c in self.cases if c.verdict == "improvement"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {v: sum(c.verdict == v for c in self.cases) for v in VERDICTS if any(c.verdict == v for c in self.cases)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        d["failed"] = self.failed
        d["counts"] = self.counts()
        return d


@dataclass
class CaseComparison:
    id: str
    verdict: str
    baseline_ms: float | None = None
    current_ms: float | None = None
    ratio: float | None = None  # current / baseline (normalised when `normalized`)
    ci_low: float | None = None
    ci_high: float | None = None
    raw_ratio: float | None = None  # before normalisation
    p_slower: float | None = None  # P(a current sample > a baseline sample): Mann-Whitney effect size
    delta_ms: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RegressReport(GateOutcome):
    cases: list[CaseComparison]
    tolerance: float
    floor_ms: float
    confidence: float
    normalized: bool
    reference_ratio: float | None
    baseline_host: str
    current_host: str
    profile: str
    notes: list[str] = field(default_factory=list)
    statistic: str = "median"
    allow_missing: bool = False
    allow_inconclusive: bool = False
    mode: str = "baseline"


# ---------------------------------------------------------------- statistics
STATISTICS = {"median": 50.0, "p25": 25.0, "p10": 10.0}  # the latency statistic the gate compares


def _median(xs: Any, q: float = 50.0) -> Any:
    """Quantile `q` (percent) along the last axis; the median by default."""
    import numpy as np

    return np.percentile(xs, q, axis=-1)


def bootstrap_ratio(cur: Sequence[float], base: Sequence[float], *, ref_cur: Sequence[float] | None = None,
                    ref_base: Sequence[float] | None = None, confidence: float = 0.95, n_boot: int = 2000,
                    seed: int = 0, q: float = 50.0) -> tuple[float, float, float]:
    """Ratio of the q-th percentiles (medians by default) current/baseline, divided by the reference's
    when given, and its percentile bootstrap interval. Deterministic for a given seed, so a gate
    decision is reproducible."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def boot(xs: Sequence[float]) -> Any:
        a = np.asarray(xs, dtype=np.float64)
        return _median(a[rng.integers(0, len(a), size=(n_boot, len(a)))], q)

    point = float(_median(cur, q) / _median(base, q))
    dist = boot(cur) / boot(base)
    if ref_cur is not None and ref_base is not None:
        point /= float(_median(ref_cur, q) / _median(ref_base, q))
        dist = dist / (boot(ref_cur) / boot(ref_base))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(dist, [alpha, 1 - alpha])
    return point, float(lo), float(hi)


def prob_slower(cur: Sequence[float], base: Sequence[float]) -> float:
    """P(X_cur > X_base) + P(=)/2, the Mann-Whitney U statistic divided by n*m (0.5 = no difference)."""
    import numpy as np

    a = np.asarray(cur, dtype=np.float64)[:, None]
    b = np.asarray(base, dtype=np.float64)[None, :]
    return float(((a > b).sum() + 0.5 * (a == b).sum()) / (a.size * b.size))


# ---------------------------------------------------------------- the gate
def _by_id(res: "BenchResults") -> dict[str, Any]:
    return {c.case.id: c for c in res.cases}


def _gate_settings(profile_name: str, tolerance: float | None, floor_ms: float | None, statistic: str | None,
                   normalize: str | None, baseline: "BenchResults") -> tuple[float, float, str, str, str]:
    """Tolerance, floor, statistic and normalisation: explicit values, else the profile's `gate:`, else
    the copy of the profile stored in the baseline file."""
    if None not in (tolerance, floor_ms, statistic, normalize):
        return tolerance, floor_ms, statistic, normalize, "given"  # type: ignore[return-value]
    gate: dict[str, Any] = {}
    source = "profile"
    try:
        from edgevit.bench.profiles import load_profile

        gate = load_profile(profile_name).gate.__dict__
    except ConfigError:
        gate = (baseline.profile or {}).get("gate") or {}
        source = "baseline file" if gate else "defaults"
    tol = tolerance if tolerance is not None else float(gate.get("baseline_tolerance")
                                                        or gate.get("rel_tolerance", 0.10))
    floor = floor_ms if floor_ms is not None else float(gate.get("abs_floor_ms", 0.5))
    stat = statistic or str(gate.get("statistic", "median"))
    norm = normalize or str(gate.get("normalize", "auto"))
    return tol, floor, stat, norm, source


def compare(
    current: "BenchResults",
    baseline: "BenchResults",
    *,
    tolerance: float | None = None,
    floor_ms: float | None = None,
    confidence: float = 0.95,
    normalize: str | None = None,
    statistic: str | None = None,
    n_boot: int = 2000,
    allow_missing: bool = False,
    allow_inconclusive: bool = False,
) -> RegressReport:
    """Compare two results case by case (see the module docstring for the rule)."""
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"confidence must be in [0.5, 1), got {confidence}")
    profile = baseline.setup.get("profile", "host")
    for name, res in (("current", current), ("baseline", baseline)):
        if res.setup.get("measured_on") == "emulated":
            raise ConfigError(f"the {name} results were measured under emulation (qemu): their timings are the "
                              "emulator's, not a device's; the gate compares device timings only")
    if current.setup.get("profile") != profile:
        raise ConfigError(f"current results are for profile {current.setup.get('profile')!r}, "
                          f"the baseline for {profile!r}: compare like with like")
    tol, floor, stat, norm, source = _gate_settings(profile, tolerance, floor_ms, statistic, normalize, baseline)
    if norm not in NORMALIZE:
        raise ConfigError(f"normalize must be one of {', '.join(NORMALIZE)}, got {norm!r}")
    normalize = norm
    if stat not in STATISTICS:
        raise ConfigError(f"statistic must be one of {', '.join(STATISTICS)}, got {stat!r}")
    q = STATISTICS[stat]
    if tol <= 0 or floor < 0:
        raise ConfigError(f"tolerance must be > 0 and the floor >= 0 (got {tol}, {floor})")
    cur, base = _by_id(current), _by_id(baseline)
    _check_overlap(cur, base)
    notes = [f"statistic {stat}, tolerance {tol:.0%}, floor {floor:g} ms, normalise {normalize} (from the {source})"]
    bfp = baseline.setup.get("host_fingerprint", "")
    cfp = current.setup.get("host_fingerprint", "")
    ref_c = next((c for c in current.cases if c.case.reference and c.ok), None)
    ref_b = next((c for c in baseline.cases if c.case.reference and c.ok), None)
    want_norm = normalize == "always" or (normalize == "auto" and bfp != cfp)
    same_ref = bool(ref_c and ref_b and ref_c.case.artifact_sha256 == ref_b.case.artifact_sha256)
    normalized = want_norm and same_ref
    ref_ratio = None
    if want_norm and not normalized:
        why = "is missing from one file" if not (ref_c and ref_b) else "differs between the files (other edgevit)"
        notes.append(f"normalisation wanted but the reference case {why}: raw ratios used")
    if normalized:
        assert ref_c and ref_b
        ref_ratio = _median(ref_c.samples_ms, q) / _median(ref_b.samples_ms, q)
        why = "different machines" if bfp != cfp else "asked for"
        notes.append(f"normalised by the reference case ({why}): this run's machine is {float(ref_ratio):.2f}x "
                     "the baseline's")
    out: list[CaseComparison] = []
    for cid in list(base) + [c for c in cur if c not in base]:
        b, c = base.get(cid), cur.get(cid)
        if c is None:
            out.append(CaseComparison(cid, "missing", baseline_ms=b.stats.get("median") if b and b.ok else None,
                                      note="in the baseline, not in this run"))
            continue
        if b is None or not b.ok:
            out.append(CaseComparison(cid, "new", current_ms=c.stats.get("median") if c.ok else None,
                                      note="not in the baseline" if b is None else "failed in the baseline"))
            continue
        if not c.ok:
            out.append(CaseComparison(cid, "error", baseline_ms=float(_median(b.samples_ms)), note=c.error))
            continue
        if c.case.reference:
            out.append(CaseComparison(cid, "ok", float(_median(b.samples_ms)), float(_median(c.samples_ms)),
                                      note="reference case (machine speed, never a verdict)"))
            continue
        judged = _judge(cid, c.samples_ms, b.samples_ms, tol, floor, confidence, n_boot, q,
                        ref_c.samples_ms if normalized and ref_c else None,
                        ref_b.samples_ms if normalized and ref_b else None)
        out.append(_downgrade_if_unstable(judged, tol, c, b, ref_c if normalized else None,
                                          ref_b if normalized else None))
    host_c = _machine(current)
    host_b = _machine(baseline)
    return RegressReport(out, tol, floor, confidence, normalized,
                         float(ref_ratio) if ref_ratio is not None else None, host_b, host_c, profile, notes, stat,
                         allow_missing, allow_inconclusive)


def _check_overlap(cur: dict[str, Any], base: dict[str, Any]) -> None:
    """One-line error when the two files share no measured case (a gate over nothing must not pass)."""
    if any(cid in base for cid, c in cur.items() if not c.case.reference):
        return

    def ids(d: dict[str, Any]) -> str:
        real = [k for k, c in d.items() if not c.case.reference]
        return ", ".join(real[:3]) + (f" and {len(real) - 3} more" if len(real) > 3 else "") or "none"

    raise ConfigError(f"no case in common between the results ({ids(cur)}) and the baseline ({ids(base)}): "
                      "nothing to compare (same suite, threads and precisions?)")


def _downgrade_if_unstable(judged: CaseComparison, tol: float, cur: Any, base: Any, ref_cur: Any,
                           ref_base: Any) -> CaseComparison:
    """A regression measured on a busy machine becomes inconclusive unless it survives the worst the
    machine could have done: the ratio divided by how much CPU sharing could have inflated the current
    case (and the baseline's reference, when normalised) must still exceed 1 + tolerance."""
    from edgevit.bench.stability import inflation, is_unstable

    if judged.verdict != "regression" or judged.ratio is None:
        return judged
    sides = [r for r in (cur, base, ref_cur, ref_base) if r is not None]
    why = [f"{r.case.id}: {reason}" for r in sides if is_unstable(r.stability)
           for reason in r.stability.get("reasons", [])[:1]]
    if not why:
        return judged
    explained = inflation(cur.stability, cur.case.threads) * (
        inflation(ref_base.stability, ref_base.case.threads) if ref_base is not None else 1.0)
    if judged.ratio / explained > 1 + tol:
        judged.note += f" (beyond what the busy machine can explain: up to {explained:.2f}x)"
        return judged
    judged.verdict = "inconclusive"
    judged.note = (f"{judged.note}, but measured on an unstable machine ({why[0]}): rerun on an idle machine, or "
                   "compare paired (edgevit regress --base REF --suite FILE)")
    return judged


def _machine(res: "BenchResults") -> str:
    """CPU x cores, and the board's name for results measured over SSH."""
    board = (res.setup.get("board") or {}).get("name")
    return (f"board {board}: " if board else "") + f"{res.host.get('cpu', '?')} x{res.host.get('cores', '?')}"


def _judge(cid: str, cur: Sequence[float], base: Sequence[float], tol: float, floor: float, confidence: float,
           n_boot: int, q: float, ref_cur: Sequence[float] | None,
           ref_base: Sequence[float] | None) -> CaseComparison:

    seed = int.from_bytes(cid.encode()[:8].ljust(8, b"\0"), "little") % (2**32)
    ratio, lo, hi = bootstrap_ratio(cur, base, ref_cur=ref_cur, ref_base=ref_base, confidence=confidence,
                                    n_boot=n_boot, seed=seed, q=q)
    raw = float(_median(cur, q) / _median(base, q))
    b_ms = float(_median(base, q))
    # the absolute change, judged on the same scale as the ratio (baseline ms times normalised ratio)
    delta = b_ms * (ratio - 1)
    if lo > 1 and ratio > 1 + tol and delta > floor:
        verdict, note = "regression", f"slower by {ratio - 1:.0%} (beyond {tol:.0%})"
    elif hi < 1 and ratio < 1 / (1 + tol) and -delta > floor:
        verdict, note = "improvement", f"faster by {1 - ratio:.0%}: refresh the baseline (--update)"
    else:
        verdict, note = "ok", ""
    return CaseComparison(cid, verdict, b_ms, float(_median(cur, q)), ratio, lo, hi, raw, prob_slower(cur, base),
                          delta, note)


def regress(current: "str | Path | BenchResults", baseline: "str | Path | BenchResults", *,
            tolerance: float | None = None, floor_ms: float | None = None, confidence: float = 0.95,
            normalize: str | None = None, statistic: str | None = None, update: bool = False,
            force: bool = False, allow_missing: bool = False, allow_inconclusive: bool = False) -> RegressReport:
    """Library entry of `edgevit regress`: load both files, compare, optionally write `current` as the
    new baseline (`update=True`; refused for an unstable run unless `force`). The caller decides what a
    failing report means (CLI: exit code 1)."""
    from edgevit.bench.api import BenchResults, load_results

    cur = current if isinstance(current, BenchResults) else load_results(current)
    bpath = None if isinstance(baseline, BenchResults) else Path(baseline)
    if update:
        check_baseline_worthy(cur, force=force)
    if bpath is not None and not bpath.exists():
        if update:
            write_baseline(cur, bpath)
            return RegressReport([CaseComparison(c.case.id, "new", current_ms=c.stats.get("median")) for c in cur.cases],
                                 tolerance or math.nan, floor_ms or math.nan, confidence, False, None, "",
                                 "", cur.setup.get("profile", ""), [f"no baseline yet: wrote {bpath}"], "median")
        raise ConfigError(f"baseline {bpath} does not exist; create it with --update")
    base = baseline if isinstance(baseline, BenchResults) else load_results(bpath)  # type: ignore[arg-type]
    try:
        report = compare(cur, base, tolerance=tolerance, floor_ms=floor_ms, confidence=confidence,
                         normalize=normalize, statistic=statistic, allow_missing=allow_missing,
                         allow_inconclusive=allow_inconclusive)
    except ConfigError as exc:  # a new baseline may replace one it cannot be compared with (other cases)
        if not update or bpath is None:
            raise
        report = RegressReport([], math.nan, math.nan, confidence, False, None, _machine(base), _machine(cur),
                               cur.setup.get("profile", ""), [f"not compared with the old baseline: {exc}"])
    if update and bpath is not None:
        write_baseline(cur, bpath)
        report.notes.append(f"baseline updated: {bpath}")
    return report


def check_baseline_worthy(results: "BenchResults", *, force: bool = False) -> list[str]:
    """Refuse (ConfigError) a baseline from a run with failed or unstable cases, unless `force`;
    returns the reasons it would have been refused (empty for a clean run)."""
    from edgevit.bench.stability import unstable_reasons

    if results.setup.get("measured_on") == "emulated":  # never a timing, forced or not
        raise ConfigError("refusing to write a baseline from emulated (qemu) results: their timings are the emulator's")
    reasons = [f"{c.case.id}: failed ({c.error})" for c in results.cases if not c.ok] + unstable_reasons(results.cases)
    if reasons and not force:
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        raise ConfigError(f"refusing to write a baseline from an unstable run: {reasons[0]}{more}; rerun on an idle "
                          "machine (uptime: load average well below the core count) or pass --force")
    return reasons


def write_baseline(results: "BenchResults", path: Path) -> None:
    from edgevit.files import atomic_write_json

    atomic_write_json(path, results.to_dict(), indent=1)
