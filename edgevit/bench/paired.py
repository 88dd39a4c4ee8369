"""Paired, interleaved A/B timing of several runners in one process (for the speed scripts).

`interleaved`: every round runs each variant once, the order rotating per round, so drift from other
processes hits all variants alike; ratios are then taken per round. Runners must not spin idle threads
(ONNX Runtime: `spinning=False`), or the variant just timed keeps two cores busy while the next one runs.
`blockwise`: the same rotation over short blocks of runs, for runners at their defaults (spinning).
"""
from __future__ import annotations

import statistics
from collections.abc import Mapping

import numpy as np

from edgevit.backends.base import Runner
from edgevit.bench.protocol import time_call


def interleaved(runners: Mapping[str, Runner], x: np.ndarray, rounds: int, warmup: int = 10) -> dict[str, list[float]]:
    """Latency samples (ms) per variant: `warmup` untimed runs each, then `rounds` rotating rounds."""
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name].infer(x)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            samples[name].append(time_call(lambda: runners[name].infer(x)) / 1e6)  # noqa: B023 (called at once)
    return samples


def blockwise(runners: Mapping[str, Runner], x: np.ndarray, blocks: int, runs: int = 10,
              warmup: int = 3) -> dict[str, list[float]]:
    """Per-block median latency (ms) of each variant, blocks in rotating order. For runners left at their
    runtime's defaults, which may spin idle threads (ONNX Runtime does): a per-call interleaving would
    let them slow whichever variant runs next; here the `warmup` runs opening each block absorb it."""
    names = list(runners)
    medians: dict[str, list[float]] = {n: [] for n in names}
    for b in range(blocks):
        for name in names[b % len(names):] + names[: b % len(names)]:
            for _ in range(warmup):
                runners[name].infer(x)
            block = [time_call(lambda: runners[name].infer(x)) / 1e6 for _ in range(runs)]  # noqa: B023
            medians[name].append(statistics.median(block))
    return medians


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p10/p90 and min of one variant's samples (ms)."""
    a = np.asarray(samples)
    return {"median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)),
            "p90_ms": float(np.percentile(a, 90)), "min_ms": float(a.min()), "runs": len(samples)}


def speedup(base: list[float], other: list[float]) -> dict[str, float]:
    """Per-round ratios base/other: median and the 10th-90th percentile spread."""
    ratios = [b / o for b, o in zip(base, other, strict=True)]
    return {"median": statistics.median(ratios), "p10": float(np.percentile(ratios, 10)),
            "p90": float(np.percentile(ratios, 90))}


def ort_runners(paths: Mapping[str, object], threads: int) -> dict[str, Runner]:
    """Loaded ONNX Runtime runners (all optimisations, no idle spinning) for each path."""
    from pathlib import Path

    from edgevit.backends.onnx.runner import OnnxRuntimeRunner

    out: dict[str, Runner] = {}
    for name, path in paths.items():
        runner = OnnxRuntimeRunner(threads=threads, spinning=False)
        runner.load(Path(str(path)))
        out[name] = runner
    return out
