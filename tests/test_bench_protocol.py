"""The protocol's floors (count and time) and the statistics, with a fake clock: no timing noise."""
from __future__ import annotations

import pytest

from edgevit.bench.protocol import Protocol, measure, percentile, summarize
from edgevit.errors import ConfigError


class FakeClock:
    def __init__(self, step_ns: int) -> None:
        self.t, self.step = 0, step_ns

    def __call__(self) -> int:
        return self.t

    def work(self) -> None:
        self.t += self.step


def test_count_floor_and_time_floor():
    clock = FakeClock(1_000_000)  # 1 ms per call
    t = measure(clock.work, Protocol(warmup=3, warmup_seconds=0.01, runs=20, min_seconds=0.0), clock=clock)
    assert t.warmup_runs == 10 and len(t.samples_ns) == 20  # warm-up: time floor wins (10 ms)
    clock = FakeClock(1_000_000)
    t = measure(clock.work, Protocol(warmup=1, warmup_seconds=0, runs=5, min_seconds=0.05), clock=clock)
    assert len(t.samples_ns) == 50  # time floor wins
    assert all(s == 1_000_000 for s in t.samples_ns)


def test_summary_is_ordered():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0, 100.0])
    assert s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"]
    assert s["median"] == 3.5 and s["n"] == 6
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


@pytest.mark.parametrize("kw", [{"runs": 0}, {"min_seconds": -1}, {"warmup": -1}])
def test_bad_protocol(kw):
    with pytest.raises(ConfigError):
        Protocol(**kw)
