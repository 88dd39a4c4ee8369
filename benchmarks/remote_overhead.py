#!/usr/bin/env python3
"""What the remote path costs: the same artifact measured locally and `--on` a loopback board, paired.

A throwaway OpenSSH server on 127.0.0.1 (tests/_sshd.py) makes this machine its own board, so the
only difference between the two sides is the remote path: ssh multiplexing, the bundle's launcher,
the board-side worker. Rounds interleave the two (local, remote, local, remote... in a rotating
order), each a fresh process, so machine drift hits both alike. Reported:

- the measured latency, remote / local: the remote path must not change what it measures (~1.00);
- the wall time of one case from the controller, remote minus local: the per-case cost (ssh channel
  through the master, the launcher, result parsing);
- the peak RSS each side reports (the remote worker runs from the zipapp);
- the one-off costs: connect + board probe + facts with the bundle cached on the board, and the first
  push of the bundle and the artifact into an empty board cache.

    python benchmarks/remote_overhead.py                          # cas_vit_xs fp32 ONNX, 10 pairs
    python benchmarks/remote_overhead.py --pairs 30 --runs 50 --json benchmarks/results/remote_overhead.json

Needs openssh-server (the test sshd runs as this user) and edgevit[onnx]. Speed figures need a quiet
machine: the report records the load average before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import write_report

from edgevit.bench.protocol import Protocol

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the loopback sshd harness lives with the tests (tests/_sshd.py)


def _ratio_ci(pairs: list[tuple[float, float]], n_boot: int = 2000) -> tuple[float, float, float]:
    """Median of per-pair ratios remote/local and its 95% bootstrap interval."""
    import numpy as np

    r = np.array([b / a for a, b in pairs])
    rng = np.random.default_rng(0)
    boots = np.median(r[rng.integers(0, len(r), (n_boot, len(r)))], axis=1)
    return float(np.median(r)), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cas_vit_xs")
    ap.add_argument("--pairs", type=int, default=10, help="interleaved local/remote rounds")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per case")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)

    from edgevit.bench.api import plan
    from edgevit.cache import get_artifact
    from edgevit.bench.profiles import load_average
    from edgevit.bench.remote import RemoteExecutor, SshTarget
    from edgevit.bench.runner import run_case
    from tests import _sshd

    if why := _sshd.missing():
        print(f"error: {why}", file=sys.stderr)
        return 2
    art = get_artifact(args.model, target="onnx", precision="fp32").path
    protocol = Protocol(warmup=3, warmup_seconds=0.2, runs=args.runs)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="edgevit-overhead-") as tmp:
        server = _sshd.SshServer(Path(tmp) / "sshd").start()
        try:
            target = SshTarget(_sshd.ALIAS, ssh_config=server.config, python=sys.executable,
                               cache=str(Path(tmp) / "board-cache"))
            t0 = time.perf_counter()
            with RemoteExecutor(target) as ex:  # cold: empty board cache, bundle pushed
                cold_open = time.perf_counter() - t0
                (case,) = plan([art], threads=args.threads, executor=ex).cases
                t0 = time.perf_counter()
                ex.run_case(case, Protocol(warmup=0, warmup_seconds=0, runs=1))  # pushes the artifact
                first_case = time.perf_counter() - t0
                pushed = [p.__dict__ for p in ex.pushed]
            t0 = time.perf_counter()
            ex = RemoteExecutor(target)
            ex.open()  # warm: everything cached on the board
            warm_open = time.perf_counter() - t0
            rows = []
            try:
                for i in range(args.pairs):
                    order = ("local", "remote") if i % 2 == 0 else ("remote", "local")
                    got = {}
                    for side in order:
                        t0 = time.perf_counter()
                        r = run_case(case, protocol) if side == "local" else ex.run_case(case, protocol)
                        wall = time.perf_counter() - t0
                        if not r.ok:
                            print(f"error: {side} case failed: {r.error}", file=sys.stderr)
                            return 1
                        got[side] = (r.stats["median"], wall, r.peak_rss_mb)
                    rows.append(got)
                    print(f"pair {i + 1}/{args.pairs}: local {got['local'][0]:.2f} ms / {got['local'][1]:.2f} s, "
                          f"remote {got['remote'][0]:.2f} ms / {got['remote'][1]:.2f} s", file=sys.stderr)
            finally:
                t0 = time.perf_counter()
                ex.close()
                close_s = time.perf_counter() - t0
        finally:
            server.kill()
    load_after = load_average()
    lat = _ratio_ci([(r["local"][0], r["remote"][0]) for r in rows])
    extra = [r["remote"][1] - r["local"][1] for r in rows]
    med = lambda xs: statistics.median(xs)  # noqa: E731
    report = {
        "model": args.model, "artifact": art.name, "pairs": args.pairs, "runs": args.runs, "threads": args.threads,
        "load_average_before": load_before, "load_average_after": load_after, "cpus": len(os.sched_getaffinity(0)),
        "latency_median_ms": {"local": med([r["local"][0] for r in rows]), "remote": med([r["remote"][0] for r in rows])},
        "latency_ratio_remote_over_local": {"median": lat[0], "ci95": [lat[1], lat[2]]},
        "case_wall_s": {"local": med([r["local"][1] for r in rows]), "remote": med([r["remote"][1] for r in rows])},
        "case_overhead_s": {"median": med(extra), "min": min(extra), "max": max(extra)},
        "peak_rss_mb": {"local": med([r["local"][2] for r in rows]), "remote": med([r["remote"][2] for r in rows])},
        "open_cold_s": cold_open, "first_case_with_push_s": first_case, "open_warm_s": warm_open, "close_s": close_s,
        "pushed_cold": pushed, "rows": rows,
    }
    md = "\n".join([
        f"## Remote path overhead: {args.model} fp32 ONNX, {args.threads} thread(s), loopback sshd, {args.pairs} pairs",
        "",
        f"- load average before {load_before}, after {load_after} ({report['cpus']} CPUs)",
        f"- latency median: local {report['latency_median_ms']['local']:.2f} ms, remote "
        f"{report['latency_median_ms']['remote']:.2f} ms; remote/local {lat[0]:.3f} (95% CI {lat[1]:.3f}-{lat[2]:.3f})",
        f"- wall per case (controller): local {report['case_wall_s']['local']:.2f} s, remote "
        f"{report['case_wall_s']['remote']:.2f} s; remote overhead median {med(extra):.2f} s "
        f"(min {min(extra):.2f}, max {max(extra):.2f})",
        f"- peak RSS: local {report['peak_rss_mb']['local']:.1f} MB, remote {report['peak_rss_mb']['remote']:.1f} MB",
        f"- once per run: connect + probe + facts {warm_open:.2f} s with the board cache warm, close {close_s:.2f} s; "
        f"cold (bundle pushed) {cold_open:.2f} s, first case with the artifact push {first_case:.2f} s "
        f"({sum(p['bytes'] for p in pushed) / 2**20:.1f} MB pushed)",
        "",
    ])
    write_report(report, md, args.json, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
