"""Measure the latency gate's false-alarm rate and its detection power on this machine.

    python benchmarks/gate_power.py --reruns 10 --repeats 5 --out benchmarks/gate_power.md

* False alarms: the same artifact benched `--reruns` times against one baseline run; every
  "regression" verdict is a false alarm (and every "improvement" a false win).
* Detection: controlled slowdowns of 5/10/20/50/100%, made by a heavier synthetic artifact
  (`edgevit.bench.synthetic.conv_stack` with round(L0 * (1 + s)) identical conv layers, so the work
  grows by s exactly), each benched `--repeats` times in place of the baseline's artifact.

Each rerun is judged under several gate settings (statistic x normalisation x tolerance) so the
profile's `gate:` can be chosen from figures, not guesses. The load average is recorded: on a shared
machine it is the main cause of drift. Data only; imports edgevit, is never imported by it.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

from edgevit.bench import benchmark
from edgevit.bench.regress import compare
from edgevit.bench.synthetic import conv_stack

SLOWDOWNS = (0.05, 0.10, 0.20, 0.50, 1.00)
STATS = ("median", "p25")
NORMS = ("never", "always")
TOLS = (0.10, 0.25, 0.50)


def _bench(art: Path, args: argparse.Namespace, cache: Path):
    return benchmark([art], threads=args.threads, runs=args.runs, warmup=3, warmup_seconds=0.2,
                     reference=True, cache_root=cache)


def _verdicts(cur, base) -> dict[str, tuple[str, float]]:
    out = {}
    for stat, norm, tol in itertools.product(STATS, NORMS, TOLS):
        rep = compare(cur, base, tolerance=tol, floor_ms=0.2, statistic=stat, normalize=norm, n_boot=1000)
        c = next(c for c in rep.cases if c.id.startswith("model/"))
        out[f"{stat}/{norm}/{tol:.0%}"] = (c.verdict, c.ratio)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reruns", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--layers", type=int, default=20, help="L0: layers of the baseline artifact")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/gate_power.md"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gate-power-") as tmp:
        root, cache = Path(tmp), Path(tmp) / "cache"
        arts = {0.0: conv_stack(root / "s0" / "model.onnx", args.layers)}
        for s in SLOWDOWNS:
            arts[s] = conv_stack(root / f"s{int(s * 100)}" / "model.onnx", round(args.layers * (1 + s)))
        load = [os.getloadavg()[0]]
        base = _bench(arts[0.0], args, cache)
        rows = {"rerun": [], **{s: [] for s in SLOWDOWNS}}
        schedule = [("rerun", arts[0.0])] * args.reruns + [(s, arts[s]) for s in SLOWDOWNS] * args.repeats
        for i, (label, art) in enumerate(schedule):
            cur = _bench(art, args, cache)
            rows[label].append(_verdicts(cur, base))
            load.append(os.getloadavg()[0])
            print(f"[{i + 1}/{len(schedule)}] {label}: load {load[-1]:.1f}", flush=True)
    configs = list(rows["rerun"][0])
    lines = [
        "## Latency gate: false alarms and detection, measured here", "",
        f"- machine: {base.host['cpu']} x{base.host['cores']}, {base.host['os']}; {args.threads} thread(s); "
        f"{args.runs} timed runs per case; baseline artifact conv_stack({args.layers})",
        f"- 1-min load average during the measurement: min {min(load):.1f}, median "
        f"{sorted(load)[len(load) // 2]:.1f}, max {max(load):.1f} on {base.host['cores']} cores "
        + (" (above the core count: other work shared the machine)" if min(load) > base.host["cores"] else ""),
        f"- {args.reruns} identical reruns; {args.repeats} repeats per injected slowdown; "
        f"{(time.time() - started) / 60:.1f} min in all",
        "- raw ratio spread of identical reruns (median statistic, not normalised): "
        + ", ".join(f"{r['median/never/10%'][1]:.2f}" for r in rows["rerun"]),
        "- same, p25 normalised by @reference: " + ", ".join(f"{r['p25/always/10%'][1]:.2f}" for r in rows["rerun"]),
        "",
        "| gate (statistic / normalise / tolerance) | false alarms | false wins | "
        + " | ".join(f"caught +{int(s * 100)}%" for s in SLOWDOWNS) + " |",
        "|---|---:|---:|" + "---:|" * len(SLOWDOWNS),
    ]
    for cfg in configs:
        fa = sum(r[cfg][0] == "regression" for r in rows["rerun"])
        fw = sum(r[cfg][0] == "improvement" for r in rows["rerun"])
        caught = [f"{sum(r[cfg][0] == 'regression' for r in rows[s])}/{len(rows[s])}" for s in SLOWDOWNS]
        lines.append(f"| {cfg} | {fa}/{len(rows['rerun'])} | {fw}/{len(rows['rerun'])} | " + " | ".join(caught) + " |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": {str(k): v for k, v in rows.items()}}, indent=1))


if __name__ == "__main__":
    main()
