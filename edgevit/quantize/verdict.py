"""Does int8 pay? A paired, noise-aware speed verdict of an int8 artifact against its fp32 artifact.

Both run in one process, interleaved (every round runs each once, the order alternating), so load from
other processes hits both alike; the verdict is the median of the per-round ratios fp32/int8 and a
distribution-free 95% confidence interval of that median (order statistics of the sign test). Rounds
are added in blocks until the interval excludes 1 or the round/time cap is reached: when the noise is
larger than the effect the outcome is *inconclusive*, which never blocks an export.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

FASTER, SLOWER, INCONCLUSIVE, NOT_MEASURED = "faster", "slower", "inconclusive", "not measured"
MIN_ROUNDS = 20
MAX_ROUNDS = 100
BLOCK = 10
MAX_SECONDS = 30.0


@dataclass
class SpeedVerdict:
    """A base (the fp32 artifact, or the current configuration) vs a variant on one runtime: ratio > 1
    means the variant is faster."""

    outcome: str  # faster | slower | inconclusive | not measured
    ratio: float | None = None  # median over rounds of base_ms / variant_ms
    ci_low: float | None = None  # 95% interval of that median
    ci_high: float | None = None
    p10: float | None = None
    p90: float | None = None
    rounds: int = 0
    base_ms: float | None = None  # medians
    variant_ms: float | None = None
    load_avg: list[float] = field(default_factory=list)  # 1-min load average before and after
    source: str = ""  # where and how it was measured (or predicted)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, base: str = "fp32") -> str:
        """`1.52x fp32 (paired median of 40 rounds, 95% CI 1.45-1.60)` or why there is no figure."""
        if self.ratio is None:
            return f"speed {self.outcome}" + (f" ({self.note})" if self.note else "")
        text = (f"{self.ratio:.2f}x {base} (paired median of {self.rounds} rounds, 95% CI "
                f"{self.ci_low:.2f}-{self.ci_high:.2f})")
        return text + (", inconclusive: noise larger than the effect" if self.outcome == INCONCLUSIVE else "")


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median: order statistics k and n-k+1 of the sign test."""
    xs = sorted(values)
    n = len(xs)
    if n < 6:  # too few rounds for any 95% interval: the full range
        return xs[0], xs[-1]
    alpha = (1.0 - confidence) / 2
    cdf, k = 0.0, 0
    for i in range(n + 1):  # largest k with P(Binom(n, 1/2) < k) <= alpha
        p = math.comb(n, i) / 2**n
        if cdf + p > alpha:
            k = i
            break
        cdf += p
    k = max(k, 1)
    return xs[k - 1], xs[n - k]


def judge(ratios: list[float]) -> tuple[str, float, float, float]:
    """(outcome, median, ci_low, ci_high) of per-round ratios fp32/int8."""
    med = statistics.median(ratios)
    lo, hi = median_interval(ratios)
    outcome = FASTER if lo > 1.0 else SLOWER if hi < 1.0 else INCONCLUSIVE
    return outcome, med, lo, hi


def paired_compare(
    base: Callable[[], object],
    variants: dict[str, Callable[[], object]],
    *,
    warmup: int = 5,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    max_seconds: float = MAX_SECONDS,
    source: str = "",
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, SpeedVerdict]:
    """Each variant against `base`, all timed in the same rounds (order rotating per round), until every
    verdict is conclusive or a cap is reached."""
    fns = {"": base, **variants}
    names = list(fns)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    load0 = os.getloadavg()[0]
    times: dict[str, list[float]] = {n: [] for n in names}
    start = time.monotonic()
    rounds = 0
    while rounds < max_rounds:
        for _ in range(BLOCK):
            for name in names[rounds % len(names):] + names[: rounds % len(names)]:
                t0 = clock()
                fns[name]()
                times[name].append((clock() - t0) / 1e6)
            rounds += 1
        if rounds >= min_rounds:
            done = all(judge(_ratios(times, v))[0] != INCONCLUSIVE for v in variants)
            if done or time.monotonic() - start > max_seconds:
                break
    load1 = os.getloadavg()[0]
    return {v: _verdict(times[""], times[v], [load0, load1], source) for v in variants}


def _ratios(times: dict[str, list[float]], name: str) -> list[float]:
    return [a / b for a, b in zip(times[""], times[name])]


def _verdict(base: list[float], other: list[float], load: list[float], source: str) -> SpeedVerdict:
    ratios = [a / b for a, b in zip(base, other)]
    outcome, med, lo, hi = judge(ratios)
    return SpeedVerdict(
        outcome=outcome, ratio=round(med, 4), ci_low=round(lo, 4), ci_high=round(hi, 4),
        p10=round(float(np.percentile(ratios, 10)), 4), p90=round(float(np.percentile(ratios, 90)), 4),
        rounds=len(ratios), base_ms=round(statistics.median(base), 4), variant_ms=round(statistics.median(other), 4),
        load_avg=[round(x, 2) for x in load], source=source,
        note="" if outcome != INCONCLUSIVE else
        f"the 95% interval {lo:.2f}-{hi:.2f} contains 1 after {len(ratios)} rounds: noise larger than the effect",
    )


def paired_verdict(run_fp32: Callable[[], object], run_int8: Callable[[], object], **kw: Any) -> SpeedVerdict:
    """fp32 against int8 (`paired_compare` with one variant)."""
    return paired_compare(run_fp32, {"int8": run_int8}, **kw)["int8"]
