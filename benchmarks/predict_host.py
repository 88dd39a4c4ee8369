"""Host check of `edgevit predict`: calibrate on the standard networks, predict the zoo, measure the zoo.

    python benchmarks/predict_host.py [--runtime ncnn] [--threads 2] [--runs 20] [--models a,b] [--networks x,y]

1. `edgevit calibrate --device host`: export the standard networks of `edgevit.predict.nets` (not the
   zoo), measure them with edgevit bench's runner and fit this host's cost model;
2. `edgevit bench` the zoo models (every model of `edgevit models`, 224 px) on the same runtime and
   threads, in the same run;
3. predict the zoo from the host model and compare: per model the measured and predicted ms, the
   error, whether the measurement lies in the 80 % interval; the median absolute error (goal <= 15 %).

Writes benchmarks/results/predict_host_<runtime>_t<threads>.{json,md} with the machine and its load.
Speed figures need a quiet machine: the load average at start and end is recorded beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    from edgevit.bench.api import plan, run_plan
    from edgevit.bench.profiles import detect_host, load_average, load_profile
    from edgevit.bench.protocol import Protocol
    from edgevit.models import list_models
    from edgevit.predict.api import artifact_features, predict_features
    from edgevit.predict.calibrate import calibrate_host

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", default="ncnn", choices=("ncnn", "onnxruntime"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--statistic", default="median", choices=("median", "min"),
                    help="bench statistic for calibration and zoo alike (min on a loaded machine)")
    ap.add_argument("--models", default=None, help="comma-separated zoo subset (default: all)")
    ap.add_argument("--networks", default=None, help="comma-separated standard-network subset (default: all)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)
    host_profile = load_profile("host")
    threads = args.threads or host_profile.threads
    load_start = load_average()
    nets = args.networks.split(",") if args.networks else None
    model, model_path = calibrate_host(runtime=args.runtime, threads=threads, networks=nets, runs=args.runs,
                                       statistic=args.statistic, log=log)
    log(model.describe())
    zoo = args.models.split(",") if args.models else list_models()
    p = plan(zoo, profile="host", runtime=args.runtime, precision="fp32", threads=threads)  # the fp32 cost model
    res = run_plan(p, Protocol(warmup=3, runs=args.runs), progress=True)
    rows = []
    for c in res.cases:
        if not c.ok:
            rows.append({"model": c.case.model, "error": c.error})
            continue
        feats = artifact_features(Path(c.case.artifact))
        feats.name = c.case.model or feats.name
        pred = predict_features(feats, model, host_profile, artifact=c.case.artifact)
        measured = float(c.stats[args.statistic])
        lo, hi = pred.interval_ms
        rows.append({"model": feats.name, "measured_ms": round(measured, 2), "predicted_ms": round(pred.predicted_ms, 2),
                     "interval_ms": [round(lo, 2), round(hi, 2)], "error": round(pred.predicted_ms / measured - 1, 4),
                     "inside_interval": lo <= measured <= hi, "extrapolation": pred.extrapolation,
                     "mmacs": pred.mmacs})
    ok = [r for r in rows if "measured_ms" in r]
    errs = [abs(r["error"]) for r in ok]
    summary = {
        "models": len(ok), "median_abs_error": round(statistics.median(errs), 4) if errs else None,
        "within_15": round(sum(e <= 0.15 for e in errs) / len(errs), 4) if errs else None,
        "within_20": round(sum(e <= 0.20 for e in errs) / len(errs), 4) if errs else None,
        "inside_80_interval": round(sum(r["inside_interval"] for r in ok) / len(ok), 4) if ok else None,
        "goal": "median abs error <= 15%",
    }
    host = detect_host()
    doc = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "runtime": args.runtime,
        "threads": threads, "runs": args.runs, "statistic": args.statistic, "host": host.to_dict(),
        "load_average": {"start": load_start, "end": load_average()},
        "calibration": {"file": str(model_path), "description": model.describe(), "networks": model.loo.errors,
                        "loo": model.loo.summary()},
        "summary": summary, "zoo": rows,
        "command": "python benchmarks/predict_host.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"predict_host_{args.runtime}_t{threads}"
    tmp = stem.with_name(stem.name + ".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, stem.with_suffix(".json"))
    md = markdown(doc)
    tmp = stem.with_name(stem.name + ".md.tmp")
    tmp.write_text(md)
    os.replace(tmp, stem.with_suffix(".md"))
    print(md)
    log(f"wrote {stem}.json and {stem}.md")


def markdown(doc: dict) -> str:
    s = doc["summary"]
    la = doc["load_average"]
    lines = [
        f"# edgevit predict on this host ({doc['runtime']}, {doc['threads']} threads)", "",
        f"Host: {doc['host']['cpu']} x{doc['host']['cores']} ({doc['host']['arch']}); load average at start "
        f"{la['start']}, at end {la['end']}. Created {doc['created']} by `{doc['command']}`.", "",
        f"Calibration (standard networks, not the zoo): {doc['calibration']['description']}.", "",
        f"| zoo model | MMACs | measured ms (bench {doc['statistic']}) | predicted ms | 80% interval | error | in interval |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in doc["zoo"]:
        if "measured_ms" not in r:
            lines.append(f"| {r['model']} | | failed: {r['error']} | | | | |")
            continue
        lo, hi = r["interval_ms"]
        lines.append(f"| {r['model']} | {r['mmacs']:.0f} | {r['measured_ms']:.1f} | {r['predicted_ms']:.1f} | "
                     f"{lo:.1f}-{hi:.1f} | {r['error']:+.0%} | {'yes' if r['inside_interval'] else 'no'} |")
    lines += ["", f"Median absolute error {s['median_abs_error']:.1%} over {s['models']} zoo models "
              f"(goal <= 15%); within ±15%: {s['within_15']:.0%}, within ±20%: {s['within_20']:.0%}; "
              f"measurement inside the 80% interval: {s['inside_80_interval']:.0%}.", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
