"""Subprocess entry of one benchmark case: `python -m edgevit.bench.worker SPEC.json`.

It runs in a fresh interpreter so that every case starts cold (load time and first inference are
real), its peak RSS is its own (the parent reads it with `os.wait4`), and one case's threads, caches
or allocator state cannot leak into the next. It pins threads (intra-op threads of the runner plus
the OpenMP/MKL/OpenBLAS environment, set before numpy is imported), loads the artifact through
`edgevit.backends.open_runner`, times it with the protocol and prints one JSON line prefixed with
RESULT_PREFIX as its last line of stdout. The worker itself imports neither torch nor any exporter;
a runtime that is built on torch (ExecuTorch, the lite interpreter) brings it, and then its peak RSS
honestly includes it.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RESULT_PREFIX = "EDGEVIT_BENCH_RESULT "
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
              "NUMEXPR_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins every common thread pool to `threads` (set before the runtime loads)."""
    return {k: str(threads) for k in THREAD_ENV}


def _rss_mb() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / (1024 if sys.platform == "darwin" else 1)


def _input_shape(runner: Any, spec: dict[str, Any]) -> list[int]:
    """The runner's static input shape when it has one, else (batch, 3, img, img) from the spec."""
    batch, size = int(spec.get("batch", 1)), int(spec.get("img_size") or 224)
    shape = list(getattr(runner, "input_shape", None) or [])
    if len(shape) == 4:
        dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
        dims[0] = batch if dims[0] is None else dims[0]
        fill = [batch, 3, size, size]
        return [d if d is not None else fill[i] for i, d in enumerate(dims)]
    if shape and all(isinstance(d, int) and d > 0 for d in shape):
        return shape
    return [batch, 3, size, size]


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Load, first inference, then the protocol; everything in one dict (raw samples included)."""
    threads = spec.get("threads")
    if threads:
        os.environ.update(thread_env(int(threads)))
    rss_start = _rss_mb()

    import numpy as np

    from edgevit.backends import get_runtime, open_runner
    from edgevit.bench import stability
    from edgevit.bench.protocol import Protocol, measure

    protocol = Protocol.from_dict(spec.get("protocol") or {})
    avail = get_runtime(spec["runtime"]).probe()
    t0 = time.perf_counter_ns()
    runner = open_runner(spec["runtime"], Path(spec["artifact"]), threads=threads, **(spec.get("options") or {}))
    load_ns = time.perf_counter_ns() - t0
    rss_loaded = _rss_mb()
    shape = _input_shape(runner, spec)
    x = np.random.default_rng(int(spec.get("seed", 0))).standard_normal(shape, dtype=np.float32)
    t0 = time.perf_counter_ns()
    out = runner.infer(x)
    first_ns = time.perf_counter_ns() - t0
    before = stability.snapshot()  # the machine's state over the timed phase, measured where it runs
    timing = measure(lambda: runner.infer(x), protocol)
    machine = stability.between(before, stability.snapshot())
    runner.close()
    return {
        "ok": True,
        "runtime_version": avail.version,
        "input_shape": shape,
        "output_shape": list(np.shape(out)),
        "load_ms": load_ns / 1e6,
        "first_ms": first_ns / 1e6,
        "warmup_runs": timing.warmup_runs,
        "warmup_ms": timing.warmup_ns / 1e6,
        "samples_ns": timing.samples_ns,
        "stability": machine,
        "rss_start_mb": round(rss_start, 2),
        "rss_loaded_mb": round(rss_loaded, 2),
        "rss_self_peak_mb": round(_rss_mb(), 2),
        "threads_env": {k: os.environ.get(k, "") for k in THREAD_ENV[:3]},
        "pid": os.getpid(),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        spec = json.loads(Path(args[0]).read_text() if args else sys.stdin.read())
        result = run(spec)
    except Exception as exc:  # reported to the parent as data: one failed case must not end the run
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        result = {"ok": False, "error": f"{type(exc).__name__}: {first}", "error_type": type(exc).__name__}
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
