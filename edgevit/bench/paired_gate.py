"""The paired latency gate: base and head artifacts timed alternately, each in a fresh process, in one job.

A stored baseline was measured at another time, often on another machine; on a shared CI runner the
machine's speed drifts by more than the slowdowns worth catching. Here each case is measured as
pairs: base then head (or head then base, alternating), each measurement a fresh worker process with
the suite's protocol, as `edgevit bench` does. Rounds go over all cases in turn, so a burst of load hits
a few pairs of every case rather than every pair of one. The ratio of each pair (head's statistic /
base's, default the median of its samples) cancels what drifts slower than a pair lasts; the pair
ratios are judged by `edgevit.bench.verdict` (default the Wilcoxon signed-rank interval, chosen by
`benchmarks/gate_power.py`). Sequential: after `min_pairs` pairs a case with a verdict stops, an
inconclusive one gets `step` more pairs, up to `max_pairs`.

Both sides are timed by this (head's) worker and runner settings: the gate judges the artifacts. A case
whose base and head artifacts are byte-identical (same sha256) is not timed: its latency cannot differ.
Where the artifacts come from (a git ref exported by its own code, or a folder) is `base_artifacts`.
"""
from __future__ import annotations

import datetime as _dt
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgevit.bench.protocol import Protocol
from edgevit.bench.regress import GateOutcome
from edgevit.bench.runner import Case, CaseResult
from edgevit.bench.stability import is_unstable
from edgevit.bench.verdict import Interval, NoiseModel, Rule, decide, noise_model
from edgevit.errors import ConfigError

STATISTICS = {"median": 0.5, "p25": 0.25, "min": 0.0}  # what one fresh process's samples are reduced to
# chosen by benchmarks/gate_power.py (false alarms and power under load on the 2-core host; gate_power.md)
DEFAULT_NOISE = "wilcoxon"
DEFAULT_STATISTIC = "median"
DEFAULT_STEP = 8  # pairs added per look while a case is inconclusive (8, 16, 24: three looks)


@dataclass
class Side:
    """One side of the comparison: where its artifacts came from, and its cases by id."""

    label: str
    cases: dict[str, Case]
    notes: list[str] = field(default_factory=list)


@dataclass
class PairedCase:
    id: str
    verdict: str
    base_ms: float | None = None  # median over the pairs of the base's per-process statistic
    head_ms: float | None = None
    ratio: float | None = None  # head / base (interval point)
    ci_low: float | None = None
    ci_high: float | None = None
    pairs: int = 0
    ratios: list[float] = field(default_factory=list)
    unstable: int = 0  # measurements (of 2 * pairs) flagged unstable (edgevit.bench.stability)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PairedReport(GateOutcome):
    cases: list[PairedCase]
    tolerance: float
    floor_ms: float
    confidence: float
    noise: str
    statistic: str
    base: str
    head: str
    profile: str
    host: str
    protocol: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    load_average: dict[str, Any] = field(default_factory=dict)
    allow_missing: bool = False
    allow_inconclusive: bool = False
    created: str = ""
    mode: str = "paired"


# ---------------------------------------------------------------- matching the two sides
def match(base: Side, head: Side) -> tuple[list[tuple[Case, Case]], list[str], list[str]]:
    """(base case, head case) pairs by case id, ids only in the base (missing), ids only in head (new).
    The base case is head's case with the base's artifact, so both run with head's settings."""
    pairs, missing, new = [], [], []
    for cid, h in head.cases.items():
        b = base.cases.get(cid)
        if b is None:
            new.append(cid)
            continue
        pairs.append((replace(h, artifact=b.artifact, artifact_sha256=b.artifact_sha256,
                              model_size_bytes=b.model_size_bytes), h))
    missing = [cid for cid in base.cases if cid not in head.cases]
    if not pairs:
        raise ConfigError(f"no case in common between the base ({base.label}: {_ids(base.cases)}) and head "
                          f"({_ids(head.cases)}): nothing to compare")
    return pairs, missing, new


def _ids(cases: dict[str, Any]) -> str:
    ids = list(cases)
    return ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "") if ids else "none"


# ---------------------------------------------------------------- measuring
def reduce_samples(samples: Sequence[float], statistic: str) -> float:
    """One fresh process's samples -> one latency (ms): its median, p25 or min."""
    xs = sorted(samples)
    pos = (len(xs) - 1) * STATISTICS[statistic]
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class _Open:
    """A case still being measured."""

    base: Case
    head: Case
    base_ms: list[float] = field(default_factory=list)
    head_ms: list[float] = field(default_factory=list)
    unstable: int = 0
    error: str = ""
    result: PairedCase | None = None

    @property
    def ratios(self) -> list[float]:
        return [h / b for b, h in zip(self.base_ms, self.head_ms, strict=True)]


Executor = Callable[..., CaseResult]


def measure_pairs(pairs: Sequence[tuple[Case, Case]], protocol: Protocol, *, rule: Rule,
                  noise: NoiseModel | str = "wilcoxon", confidence: float = 0.95, min_pairs: int = 8,
                  max_pairs: int = 24, step: int = DEFAULT_STEP, statistic: str = "median", skip_identical: bool = True,
                  executor: Executor | None = None, timeout_s: float = 900.0,
                  on_measure: Callable[[str, str, CaseResult], None] | None = None) -> list[PairedCase]:
    """Time every (base, head) pair of cases alternately until each has a verdict (see the module
    docstring); `executor(case, protocol, timeout_s=...)` runs one fresh process (default: here)."""
    from edgevit import progress
    from edgevit.bench.runner import run_case

    model = noise_model(noise) if isinstance(noise, str) else noise
    if statistic not in STATISTICS:
        raise ConfigError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if not 2 <= min_pairs <= max_pairs or step < 1:
        raise ConfigError(f"pairs: need 2 <= --pairs <= --max-pairs and a step >= 1 (got {min_pairs}, {max_pairs}, {step})")
    run_one = executor or run_case
    cases = [_Open(b, h) for b, h in pairs]
    for c in cases:
        if skip_identical and c.base.artifact_sha256 and c.base.artifact_sha256 == c.head.artifact_sha256:
            c.result = PairedCase(c.head.id, "ok", note="identical artifact on both sides (same sha256): not timed")
    with progress.step("paired gate: base/head pairs", sum(min_pairs for c in cases if c.result is None)) as tick:
        for target in looks(min_pairs, max_pairs, step):
            for r in range(target):  # round-robin: round r measures pair r of every open case
                for c in cases:
                    if c.result is None and len(c.base_ms) == r:
                        _measure_pair(c, r, protocol, run_one, timeout_s, statistic, on_measure)
                        tick(1)
            final = target >= max_pairs
            for c in cases:
                if c.result is None:
                    verdict = _judge(c, model, rule, confidence, final=final)
                    c.result = None if verdict.verdict == "inconclusive" and not final else verdict
            if all(c.result is not None for c in cases):
                break
    return [c.result for c in cases if c.result is not None]


def looks(min_pairs: int, max_pairs: int, step: int) -> list[int]:
    """The pair counts at which an open case is judged: min_pairs, then every `step`, then max_pairs."""
    out = list(range(min_pairs, max_pairs, step))
    return out + [max_pairs] if not out or out[-1] != max_pairs else out


def replay(ratios: Sequence[float], *, rule: Rule, noise: NoiseModel | str = "wilcoxon", confidence: float = 0.95,
           min_pairs: int = 8, max_pairs: int = 24, step: int = DEFAULT_STEP, base_ms: float | None = None,
           seed: int = 0) -> tuple[str, int, Interval]:
    """The verdict `measure_pairs` reaches on one case whose pair ratios are `ratios` (in measured order):
    (verdict, pairs it used, interval). For studies of the rule on recorded pairs (gate_power.py)."""
    model = noise_model(noise) if isinstance(noise, str) else noise
    for n in looks(min_pairs, min(max_pairs, len(ratios)), step):
        iv = model.interval(ratios[:n], confidence, seed)
        verdict, _ = decide(iv, rule, base_ms)
        if verdict != "inconclusive":
            return verdict, n, iv
    return verdict, n, iv


def _measure_pair(c: _Open, r: int, protocol: Protocol, run_one: Executor, timeout_s: float, statistic: str,
                  on_measure: Callable[[str, str, CaseResult], None] | None) -> None:
    """One pair: base then head on even rounds, head then base on odd ones."""
    got: dict[str, float] = {}
    for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
        res = run_one(c.base if side == "base" else c.head, protocol, timeout_s=timeout_s)
        if on_measure is not None:
            on_measure(c.head.id, side, res)
        if not res.ok:
            c.error = f"{side}: {res.error}"
            c.result = PairedCase(c.head.id, "error", note=c.error, pairs=len(c.base_ms))
            return
        c.unstable += is_unstable(res.stability)
        got[side] = reduce_samples(res.samples_ms, statistic)
    c.base_ms.append(got["base"])
    c.head_ms.append(got["head"])


def _judge(c: _Open, model: NoiseModel, rule: Rule, confidence: float, *, final: bool) -> PairedCase:
    seed = zlib.crc32(c.head.id.encode())
    iv: Interval = model.interval(c.ratios, confidence, seed)
    base_ms = _median(c.base_ms)
    verdict, note = decide(iv, rule, base_ms)
    if verdict == "inconclusive" and final:
        note += (f"; after {len(c.ratios)} pairs. Rerun with more pairs (--max-pairs), on a quieter machine, or "
                 "with fewer other jobs on the runner")
    if c.unstable:
        note += f"{'; ' if note else ''}{c.unstable} of {2 * len(c.ratios)} measurements on a busy machine"
    return PairedCase(c.head.id, verdict, base_ms, _median(c.head_ms), iv.point, iv.low,
                      iv.high if math.isfinite(iv.high) else None, len(c.ratios), [round(x, 5) for x in c.ratios],
                      c.unstable, note)


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def judge_ratios(ratios: Mapping[str, Sequence[float]], *, rule: Rule, noise: NoiseModel | str,
                 confidence: float = 0.95, base_ms: Mapping[str, float] | None = None,
                 head_ms: Mapping[str, float] | None = None) -> list[PairedCase]:
    """Verdicts for per-case ratios another mode produced: the seam for a deterministic mode (a cost
    model's predicted latencies, instruction counts: `verdict.Deterministic(margin)`), which then
    reports, prints and fails exactly like the measured paired gate (`PairedReport(mode=...)`)."""
    model = noise_model(noise) if isinstance(noise, str) else noise
    out = []
    for cid, rs in ratios.items():
        iv = model.interval(list(rs), confidence, zlib.crc32(cid.encode()))
        b = (base_ms or {}).get(cid)
        verdict, note = decide(iv, rule, b)
        out.append(PairedCase(cid, verdict, b, (head_ms or {}).get(cid), iv.point, iv.low,
                              iv.high if math.isfinite(iv.high) else None, len(rs), [round(x, 5) for x in rs], 0, note))
    return out


# ---------------------------------------------------------------- the gate
def paired_gate(base: str | Path, suite: str | Path, *, profile: str | None = None, threads: int | None = None,
                tolerance: float | None = None, floor_ms: float | None = None, confidence: float = 0.95,
                noise: str | None = None, statistic: str | None = None, min_pairs: int | None = None,
                max_pairs: int | None = None, allow_missing: bool = False, allow_inconclusive: bool = False,
                protocol: dict[str, Any] | None = None, cache_root: Path | None = None) -> PairedReport:
    """Library entry of `edgevit regress --base REF --suite FILE`: export or find the base's artifacts,
    plan head's, measure pairs, judge. The caller decides what a failing report means (CLI: exit 1)."""
    from edgevit.bench.base_artifacts import base_side, head_side
    from edgevit.bench.profiles import detect_host, load_average
    from edgevit.bench.protocol import protocol_from
    from edgevit.bench.suites import load_suite

    st = load_suite(suite)
    head, plan = head_side(st, profile=profile, threads=threads, cache_root=cache_root)
    gate = plan.profile.gate
    rule = Rule(tolerance if tolerance is not None else gate.rel_tolerance,
                floor_ms if floor_ms is not None else gate.abs_floor_ms)
    noise = noise or DEFAULT_NOISE
    statistic = statistic or DEFAULT_STATISTIC
    min_pairs = min_pairs or gate.pairs
    max_pairs = max(max_pairs or gate.max_pairs, min_pairs)
    base_s = base_side(base, st, plan, cache_root=cache_root)
    pairs, missing, new = match(base_s, head)
    proto = protocol_from(st.protocol, **(protocol or {}))
    load_start = load_average()
    cases = measure_pairs(pairs, proto, rule=rule, noise=noise, confidence=confidence, min_pairs=min_pairs,
                          max_pairs=max_pairs, statistic=statistic)
    cases += [PairedCase(cid, "missing", note="in the base, not in head's suite") for cid in missing]
    cases += [PairedCase(cid, "new", note="not in the base") for cid in new]
    host = detect_host()
    notes = [*base_s.notes, *head.notes, f"{min_pairs} to {max_pairs} pairs per case; floor {rule.floor_ms:g} ms"]
    return PairedReport(cases, rule.tolerance, rule.floor_ms, confidence, noise, statistic, base_s.label, head.label,
                        plan.profile.name, f"{host.cpu} x{host.cores}", proto.to_dict(), notes,
                        {"start": load_start, "end": load_average()}, allow_missing, allow_inconclusive,
                        _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
