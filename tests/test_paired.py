"""The paired timers of the speed scripts (`edgevit.bench.paired`): rotation, counts, and what they time."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgevit.backends.base import Runner
from edgevit.bench.paired import blockwise, interleaved


class BusyRunner(Runner):
    """Spends `ms` of CPU per call (a busy wait, so the timer sees real elapsed time) and logs its calls."""

    def __init__(self, name: str, ms: float, log: list[str]) -> None:
        super().__init__()
        self.name, self.ms, self.log = name, ms, log

    def load(self, path: Path) -> None:
        """Nothing to load."""

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.log.append(self.name)
        end = time.perf_counter() + self.ms / 1e3
        while time.perf_counter() < end:
            pass
        return x


def test_blockwise_rotates_blocks_and_times_each_variant() -> None:
    log: list[str] = []
    runners = {"fast": BusyRunner("fast", 1.0, log), "slow": BusyRunner("slow", 3.0, log)}
    med = blockwise(runners, np.zeros(1, np.float32), blocks=3, runs=4, warmup=2)
    assert {k: len(v) for k, v in med.items()} == {"fast": 3, "slow": 3}
    per_block = 2 + 4
    starts = [log[i * per_block] for i in range(0, 6, 2)]  # the variant opening each block
    assert starts == ["fast", "slow", "fast"]
    assert log.count("fast") == log.count("slow") == 3 * per_block
    assert all(m >= 1.0 for m in med["fast"]) and all(m >= 3.0 for m in med["slow"])
    assert all(s > f for f, s in zip(med["fast"], med["slow"], strict=True))


def test_interleaved_runs_every_variant_once_per_round() -> None:
    log: list[str] = []
    runners = {"a": BusyRunner("a", 0.5, log), "b": BusyRunner("b", 2.0, log)}
    samples = interleaved(runners, np.zeros(1, np.float32), rounds=4, warmup=1)
    assert log[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert all(t >= 2.0 for t in samples["b"]) and np.median(samples["b"]) > np.median(samples["a"])
