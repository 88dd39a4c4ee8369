"""How busy the machine was while a case was timed, and whether its samples can be trusted (pyperf-like).

Measured where the case runs (the worker: here, or on a board through `bench.board`), from /proc and
the worker's own rusage, around the timed phase only:

- *others' CPU*: busy time of all CPUs (/proc/stat user+nice+system+irq+softirq) minus the worker's
  own CPU time (`getrusage(RUSAGE_SELF)`: every thread of the runtime), over the wall time, in cores;
- *steal*: CPU time the hypervisor gave to other guests (/proc/stat steal), in cores;
- the 1-minute load average at the start and end of the timed phase (recorded, not judged: it lags a
  minute and counts the benchmark itself, whereas others' CPU time is the direct measure);
- the spread of the samples: IQR / median.

`assess` turns those facts into `stable` plus the reasons a case is not (busy machine, stolen CPU,
spread samples). Stdlib only: the worker and the board launcher import it.
"""
from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC_STAT = Path("/proc/stat")
# A case is measured on a busy machine when, on average over its timed phase, other processes kept
# more than this much of a core busy (an idle 2-core VM here: ~0.01-0.05 cores of daemons; one CPU hog
# on the other core: ~1.0), or the hypervisor stole more than STEAL_CORES.
BUSY_CORES = 0.25
STEAL_CORES = 0.05
# Samples whose IQR exceeds this share of the median are too spread to stand for one latency (idle
# here: cas_vit_xs 1-3%; pyperf warns at a standard deviation of 10% of the mean).
SPREAD = 0.10
_BUSY_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class Snapshot:
    """CPU accounting at one instant: all CPUs (from /proc/stat) and this process (rusage)."""

    time: float  # time.monotonic()
    busy_s: float  # all CPUs: user + nice + system + irq + softirq (guest time is inside user)
    steal_s: float
    own_s: float  # this process, all threads: user + system
    cpus: int
    load1: float | None


def _proc_stat(path: Path = PROC_STAT) -> tuple[float, float, int] | None:
    """(busy seconds, steal seconds, cpu count) from /proc/stat, or None where there is none."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    total = next((ln.split() for ln in lines if ln.startswith("cpu ")), None)
    if total is None:
        return None
    values = dict(zip(_BUSY_FIELDS, (int(v) for v in total[1:9]), strict=False))
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = sum(values.get(k, 0) for k in ("user", "nice", "system", "irq", "softirq"))
    cpus = sum(1 for ln in lines if ln.startswith("cpu") and ln[3:4].isdigit())
    return busy / tick, values.get("steal", 0) / tick, max(cpus, 1)


def snapshot() -> Snapshot | None:
    """Now, or None on a system without /proc/stat (the case then carries no stability facts)."""
    stat = _proc_stat()
    if stat is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        load1: float | None = os.getloadavg()[0]
    except OSError:
        load1 = None
    return Snapshot(time.monotonic(), stat[0], stat[1], usage.ru_utime + usage.ru_stime, stat[2], load1)


def between(before: Snapshot | None, after: Snapshot | None) -> dict[str, Any]:
    """The machine's state over an interval, as plain data for the worker's RESULT line ({} if unknown)."""
    if before is None or after is None or after.time <= before.time:
        return {}
    wall = after.time - before.time
    own = max(0.0, after.own_s - before.own_s)
    others = max(0.0, (after.busy_s - before.busy_s) - own)  # /proc/stat ticks are 10 ms: clamp at 0
    return {
        "wall_s": round(wall, 4), "cpus": after.cpus, "own_cores": round(own / wall, 3),
        "others_cores": round(others / wall, 3), "steal_cores": round(max(0.0, after.steal_s - before.steal_s) / wall, 3),
        "load1_start": _round(before.load1), "load1_end": _round(after.load1),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def spread(samples: Sequence[float]) -> float | None:
    """IQR / median of the samples (None for fewer than 4)."""
    xs = sorted(samples)
    if len(xs) < 4 or xs[len(xs) // 2] <= 0:
        return None

    def q(p: float) -> float:
        pos = (len(xs) - 1) * p
        lo = int(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return (q(0.75) - q(0.25)) / q(0.5)


def assess(facts: dict[str, Any] | None, samples: Sequence[float], *, busy_cores: float = BUSY_CORES,
           steal_cores: float = STEAL_CORES, max_spread: float = SPREAD) -> dict[str, Any]:
    """`facts` (from `between`) plus spread, `stable` and the `reasons` a case is not stable.
    Without facts (no /proc) only the spread is judged, and `known` is False."""
    out: dict[str, Any] = dict(facts or {})
    reasons: list[str] = []
    flags: list[str] = []
    others, steal = out.get("others_cores"), out.get("steal_cores")
    if isinstance(others, (int, float)) and others > busy_cores:
        reasons.append(f"busy machine: other processes used {others:.2f} of {out.get('cpus', '?')} cores "
                       f"while it was timed (load average {out.get('load1_start')})")
        flags.append("busy")
    if isinstance(steal, (int, float)) and steal > steal_cores:
        reasons.append(f"the hypervisor stole {steal:.2f} cores (steal time) while it was timed")
        flags.append("steal")
    sp = spread(samples)
    out["spread"] = None if sp is None else round(sp, 4)
    if sp is not None and sp > max_spread:
        reasons.append(f"spread samples: IQR {sp:.0%} of the median (above {max_spread:.0%})")
        flags.append("spread")
    out["known"] = bool(facts)
    out["stable"] = not reasons
    out["reasons"] = reasons
    out["flags"] = flags  # busy | steal | spread: the short form the tables show
    return out


def inflation(stability: dict[str, Any] | None, threads: int) -> float:
    """How much slower the case could have been made by sharing its cores: `threads` / the cores its
    process actually got while timed (>= 1; 1 when stable or unknown). A 1-thread case that got 0.66 of a
    core ran 1.5x slower than on an idle core from descheduling alone."""
    if not is_unstable(stability):
        return 1.0
    own = (stability or {}).get("own_cores")
    if not isinstance(own, (int, float)) or own <= 0:
        return float("inf")
    return max(1.0, threads / own)


def is_unstable(stability: dict[str, Any] | None) -> bool:
    """True when a case's recorded stability says it was not stable (unknown counts as stable)."""
    return bool(stability) and stability.get("stable") is False


def unstable_reasons(cases: Sequence[Any]) -> list[str]:
    """'id: reason' for every unstable case of a result (CaseResult objects)."""
    return [f"{c.case.id}: {r}" for c in cases if is_unstable(getattr(c, "stability", None))
            for r in c.stability.get("reasons", [])]
