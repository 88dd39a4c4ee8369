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
    """fp32 vs int8 on one runtime: ratio > 1 means int8 is faster."""

    outcome: str  # faster | slower | inconclusive | not measured
    ratio: float | None = None  # median over rounds of fp32_ms / int8_ms
    ci_low: float | None = None  # 95% interval of that median
    ci_high: float | None = None
    p10: float | None = None
    p90: float | None = None
    rounds: int = 0
    fp32_ms: float | None = None  # medians
    int8_ms: float | None = None
    load_avg: list[float] = field(default_factory=list)  # 1-min load average before and after
    source: str = ""  # where and how it was measured (or predicted)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """`1.52x fp32 (paired median of 40 rounds, 95% CI 1.45-1.60)` or why there is no figure."""
        if self.ratio is None:
            return f"speed {self.outcome}" + (f" ({self.note})" if self.note else "")
        text = (f"{self.ratio:.2f}x fp32 (paired median of {self.rounds} rounds, 95% CI "
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


def paired_verdict(
    run_fp32: Callable[[], object],
    run_int8: Callable[[], object],
    *,
    warmup: int = 5,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    max_seconds: float = MAX_SECONDS,
    source: str = "",
    clock: Callable[[], int] = time.perf_counter_ns,
) -> SpeedVerdict:
    """Time both callables interleaved until the verdict is conclusive or a cap is reached."""
    for _ in range(warmup):
        run_fp32()
        run_int8()
    load0 = os.getloadavg()[0]
    a: list[float] = []
    b: list[float] = []
    start = time.monotonic()
    outcome = INCONCLUSIVE
    while len(a) < max_rounds:
        for r in range(BLOCK):
            pair = (run_fp32, run_int8) if (len(a) + r) % 2 == 0 else (run_int8, run_fp32)
            times = []
            for fn in pair:
                t0 = clock()
                fn()
                times.append((clock() - t0) / 1e6)
            fa, fb = (times[0], times[1]) if pair[0] is run_fp32 else (times[1], times[0])
            a.append(fa)
            b.append(fb)
        if len(a) >= min_rounds:
            outcome, *_ = judge([x / y for x, y in zip(a, b)])
            if outcome != INCONCLUSIVE or time.monotonic() - start > max_seconds:
                break
    ratios = [x / y for x, y in zip(a, b)]
    outcome, med, lo, hi = judge(ratios)
    return SpeedVerdict(
        outcome=outcome, ratio=round(med, 4), ci_low=round(lo, 4), ci_high=round(hi, 4),
        p10=round(float(np.percentile(ratios, 10)), 4), p90=round(float(np.percentile(ratios, 90)), 4),
        rounds=len(ratios), fp32_ms=round(statistics.median(a), 4), int8_ms=round(statistics.median(b), 4),
        load_avg=[round(load0, 2), round(os.getloadavg()[0], 2)], source=source,
        note="" if outcome != INCONCLUSIVE else
        f"the 95% interval {lo:.2f}-{hi:.2f} contains 1 after {len(ratios)} rounds: noise larger than the effect",
    )
