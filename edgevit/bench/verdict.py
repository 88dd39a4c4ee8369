"""One rule for every mode of the latency gate: per-case ratios -> an interval (from a noise model) -> a verdict.

A mode of the gate produces, for each case, ratios head/base (> 1: slower): the paired mode one ratio
per interleaved pair of fresh processes, a deterministic mode (instruction counts, a cost model's
prediction) a single ratio that carries no sampling noise. A *noise model* turns the ratios into a
point estimate and a confidence interval; `decide` judges that interval against the tolerance:

- regression:   the interval lies above 1 and the point exceeds 1 + tolerance;
- improvement:  the interval lies below 1 and the point is below 1 / (1 + tolerance);
- inconclusive: the point exceeds 1 + tolerance but the interval reaches 1 (slower, or noise?), or the
  interval reaches past 1 + `resolution` (default twice the tolerance), so the run could not have seen
  a regression of that size: the note says what to do (more pairs, a quieter machine);
- ok otherwise.

Noise models (registry `NOISE_MODELS`): `wilcoxon` (Hodges-Lehmann estimate of the log ratio with the
exact distribution-free interval of the signed-rank test), `sign` (median with the binomial order-
statistic interval), `bootstrap` (percentile bootstrap of the mean log ratio) and `Deterministic`
(a fixed relative margin around one noise-free ratio). A predicted mode plugs in as
`decide(Deterministic(margin).interval([ratio]), Rule(tolerance))`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from edgevit.errors import ConfigError


@dataclass(frozen=True)
class Interval:
    """A ratio head/base with its confidence interval (low <= point <= high), from `n` ratios."""

    point: float
    low: float
    high: float
    method: str
    n: int


class NoiseModel(Protocol):
    name: str

    def interval(self, ratios: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Interval: ...


def _logs(ratios: Sequence[float]) -> list[float]:
    if not ratios:
        raise ValueError("no ratios to judge")
    if any(not (r > 0 and math.isfinite(r)) for r in ratios):
        raise ValueError(f"ratios must be positive and finite, got {list(ratios)}")
    return [math.log(r) for r in ratios]


def _unbounded(point: float, method: str, n: int) -> Interval:
    return Interval(point, 0.0, math.inf, method, n)


@lru_cache(maxsize=256)
def _signed_rank_cdf(n: int) -> tuple[float, ...]:
    """P(T <= t) for t = 0..n(n+1)/2, T the signed-rank statistic of n values under no change."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for k in range(1, n + 1):
        for s in range(len(counts) - 1, k - 1, -1):
            counts[s] += counts[s - k]
    total, acc, out = 2.0**n, 0, []
    for c in counts:
        acc += c
        out.append(acc / total)
    return tuple(out)


def _critical(cdf: Sequence[float], alpha_half: float) -> int | None:
    """The largest t with P(T <= t) <= alpha/2, or None when even t = 0 is likelier (too few values)."""
    best = None
    for t, p in enumerate(cdf):
        if p > alpha_half:
            break
        best = t
    return best


@dataclass(frozen=True)
class SignedRank:
    """Hodges-Lehmann estimate and the exact interval of the Wilcoxon signed-rank test (on log ratios)."""

    name: str = "wilcoxon"

    def interval(self, ratios: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Interval:
        d = _logs(ratios)
        n = len(d)
        walsh = sorted((d[i] + d[j]) / 2 for i in range(n) for j in range(i, n))
        point = math.exp(_median(walsh))
        k = _critical(_signed_rank_cdf(n), (1 - confidence) / 2)
        if k is None:
            return _unbounded(point, self.name, n)
        return Interval(point, math.exp(walsh[k]), math.exp(walsh[len(walsh) - 1 - k]), self.name, n)


@dataclass(frozen=True)
class SignTest:
    """Median ratio and its distribution-free interval from binomial order statistics."""

    name: str = "sign"

    def interval(self, ratios: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Interval:
        d = sorted(_logs(ratios))
        n = len(d)
        point = math.exp(_median(d))
        cdf, acc = [], 0.0
        for k in range(n + 1):
            acc += math.comb(n, k) / 2.0**n
            cdf.append(acc)
        k = _critical(cdf, (1 - confidence) / 2)
        if k is None:
            return _unbounded(point, self.name, n)
        return Interval(point, math.exp(d[k]), math.exp(d[n - 1 - k]), self.name, n)


@dataclass(frozen=True)
class PairBootstrap:
    """Geometric mean ratio and the percentile bootstrap interval of the mean log ratio (seeded)."""

    name: str = "bootstrap"
    resamples: int = 4000

    def interval(self, ratios: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Interval:
        import numpy as np

        d = np.asarray(_logs(ratios))
        point = math.exp(float(d.mean()))
        if len(d) < 2:
            return _unbounded(point, self.name, len(d))
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, len(d), size=(self.resamples, len(d)))].mean(axis=1)
        alpha = (1 - confidence) / 2
        lo, hi = np.quantile(means, [alpha, 1 - alpha])
        return Interval(point, math.exp(float(lo)), math.exp(float(hi)), self.name, len(d))


@dataclass(frozen=True)
class Deterministic:
    """A noise-free measurement (instruction counts, a prediction): the ratio +- a relative margin."""

    margin: float = 0.0
    name: str = "deterministic"

    def interval(self, ratios: Sequence[float], confidence: float = 0.95, seed: int = 0) -> Interval:
        d = _logs(ratios)
        point = math.exp(_median(d))
        return Interval(point, point / (1 + self.margin), point * (1 + self.margin), self.name, len(d))


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


NOISE_MODELS: dict[str, NoiseModel] = {m.name: m for m in (SignedRank(), SignTest(), PairBootstrap())}


def noise_model(name: str) -> NoiseModel:
    try:
        return NOISE_MODELS[name]
    except KeyError:
        raise ConfigError(f"noise model must be one of {', '.join(NOISE_MODELS)}, got {name!r}") from None


@dataclass(frozen=True)
class Rule:
    """What counts: the relative `tolerance`, an absolute floor (ms) and the resolution a pass needs."""

    tolerance: float
    floor_ms: float = 0.0
    resolution: float | None = None  # default 2 * tolerance: an ok must rule out a slowdown this big

    def __post_init__(self) -> None:
        if not 0 < self.tolerance < 5 or self.floor_ms < 0:
            raise ConfigError(f"tolerance must be in (0, 5) and the floor >= 0 (got {self.tolerance}, {self.floor_ms})")

    @property
    def reach(self) -> float:
        return 2 * self.tolerance if self.resolution is None else self.resolution


def decide(iv: Interval, rule: Rule, base_ms: float | None = None) -> tuple[str, str]:
    """(verdict, note) for one case; `base_ms` (the base's latency) applies the absolute floor."""
    t = rule.tolerance

    def beyond_floor(ratio: float) -> bool:
        return base_ms is None or abs(ratio - 1) * base_ms > rule.floor_ms

    span = f"{iv.point:.3f} [{iv.low:.3f}, {_fmt(iv.high)}]"
    if iv.low > 1 and iv.point > 1 + t and beyond_floor(iv.point):
        return "regression", f"slower by {iv.point - 1:.1%} (interval {span}), beyond the {t:.0%} tolerance"
    if iv.high < 1 and iv.point < 1 / (1 + t) and beyond_floor(iv.point):
        return "improvement", f"faster by {1 - iv.point:.1%} (interval {span})"
    if iv.point > 1 + t and beyond_floor(iv.point):
        return "inconclusive", (f"looks {iv.point - 1:.1%} slower, but the noise (interval {span}) cannot tell it "
                                "from no change")
    if iv.high > 1 + rule.reach and beyond_floor(iv.high):
        return "inconclusive", (f"no slowdown beyond {t:.0%} seen, but the interval reaches "
                                f"{'+' + format(iv.high - 1, '.0%') if math.isfinite(iv.high) else 'infinity'}: "
                                f"too noisy to rule out a {rule.reach:.0%} regression")
    return "ok", "" if iv.point <= 1 + t / 2 else f"slower by {iv.point - 1:.1%}, within the {t:.0%} tolerance"


def _fmt(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "inf"
