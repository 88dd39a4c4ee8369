"""The measurement protocol: warm-up by count *and* time, timed runs by count and/or minimum time, stats.

Borrowed from trtexec (warm-up 200 ms, >= 10 iterations and 3 s) and TFLite's benchmark_model
(warm-up >= 1 run and 0.5 s, >= 50 runs and 1 s): both floors must be met, so a fast model gets many
samples and a slow one still gets its minimum count. Every timed run is one `perf_counter_ns` pair
around one inference; raw samples are kept so that later comparisons can use distributions.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from edgevit.errors import ConfigError


@dataclass(frozen=True)
class Protocol:
    warmup: int = 5  # warm-up runs, at least
    warmup_seconds: float = 0.2  # and at least this long
    runs: int = 50  # timed runs, at least
    min_seconds: float = 0.0  # and at least this long
    max_runs: int = 100_000  # hard cap when min_seconds keeps a very fast model going
    max_seconds: float = 600.0  # hard cap on the timed phase

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.warmup_seconds < 0:
            raise ConfigError("warm-up runs and seconds must be >= 0")
        if self.runs < 1:
            raise ConfigError(f"--runs must be >= 1, got {self.runs}")
        if self.min_seconds < 0:
            raise ConfigError(f"--min-seconds must be >= 0, got {self.min_seconds}")
        if self.max_runs < self.runs:
            raise ConfigError(f"max_runs ({self.max_runs}) is below runs ({self.runs})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Protocol":
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown protocol field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
        return cls(**data)


def protocol_from(base: Protocol | None = None, **overrides: Any) -> Protocol:
    """`base` (a suite's protocol, else the default) with every override that is not None applied; a
    minimum time without a run count lowers the count floor to 10 (time, not count, then rules)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("min_seconds") and "runs" not in given and base is None:
        given["runs"] = 10
    return replace(base or Protocol(), **given)


@dataclass
class Timing:
    """Raw result of running a protocol: warm-up facts and the timed samples in nanoseconds."""

    warmup_runs: int
    warmup_ns: int
    samples_ns: list[int]


def time_call(fn: Callable[[], object], clock: Callable[[], int] = time.perf_counter_ns) -> int:
    """Nanoseconds of one call of `fn`: the one timed sample every edgevit measurement is made of."""
    t0 = clock()
    fn()
    return clock() - t0


def measure(fn: Callable[[], object], protocol: Protocol, clock: Callable[[], int] = time.perf_counter_ns) -> Timing:
    """Warm up, then time `fn` once per sample until both the count and the time floors are met."""
    start = clock()
    n_warm = 0
    while n_warm < protocol.warmup or (clock() - start) < protocol.warmup_seconds * 1e9:
        fn()
        n_warm += 1
    warm_ns = clock() - start
    samples: list[int] = []
    min_ns = protocol.min_seconds * 1e9
    cap_ns = protocol.max_seconds * 1e9
    total = 0
    while len(samples) < protocol.max_runs:
        if len(samples) >= protocol.runs and total >= min_ns:
            break
        if total >= cap_ns and len(samples) >= 1:
            break
        dt = time_call(fn, clock)
        samples.append(dt)
        total += dt
    return Timing(n_warm, warm_ns, samples)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values; q in [0, 100]."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


STAT_KEYS = ("median", "p90", "p99", "mean", "std", "min", "max", "iqr", "n")


def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """median, p90, p99, mean, std (sample), min, max, IQR and count of latencies in ms."""
    xs = sorted(samples_ms)
    n = len(xs)
    if n == 0:
        return {k: math.nan for k in STAT_KEYS} | {"n": 0}
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return {
        "median": percentile(xs, 50), "p90": percentile(xs, 90), "p99": percentile(xs, 99),
        "mean": mean, "std": std, "min": xs[0], "max": xs[-1],
        "iqr": percentile(xs, 75) - percentile(xs, 25), "n": n,
    }
