#!/usr/bin/env python3
"""Host latency of ncnn and ExecuTorch (XNNPACK) against ONNX Runtime, fp32 and int8 (a script, not a test).

For each model (fcaformer_l1, cas_vit_xs, stvit_small by default) it exports, through `edgevit.export`
(each artifact verified against PyTorch): ONNX fp32 + int8 (x86 preset), ncnn fp32 + fp16 + int8 (ncnn's
int8 format written by edgevit; ncnn's x86 int8 kernels are not its ARM ones, so the ncnn int8 row says
nothing about the Cortex-A17), ExecuTorch fp32 + int8 (PT2E, XNNPACKQuantizer). Then every artifact runs in its own worker process (own runtime, own thread pool,
nothing shared), batch 1, `--threads` threads, and the parent interleaves them: each round asks every
worker, in a rotating order, for a block of `--block` timed runs, so load from other processes hits all
variants alike. Median and p90 of all timed runs per artifact, plus the machine's load average during
the measurement (the host's cores may be shared: say so with the numbers).

    python benchmarks/ncnn_executorch_speed.py --rounds 20 --block 5 --json /tmp/speed.json

Timings are of this host (x86) only: they say nothing about an ARM board.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from _common import DEFAULT_MODELS, save_fixture_checkpoint
CASES = (  # (target, precision, runtime, suffix)
    ("onnx", "fp32", "onnxruntime", ".onnx"),
    ("onnx", "int8", "onnxruntime", ".onnx"),
    ("ncnn", "fp32", "ncnn", ".ncnn"),
    ("ncnn", "fp16", "ncnn", ".ncnn"),
    ("ncnn", "int8", "ncnn", ".ncnn"),
    ("executorch", "fp32", "executorch", ".pte"),
    ("executorch", "int8", "executorch", ".pte"),
)
# Extra timed variants of an exported artifact: (key suffix, case key, runner options). ncnn's packed
# layout is its ARM fast path but was several times slower on this x86 host, so both are measured.
VARIANTS = (("nopack", "ncnn/fp32", {"packing": False}),)


# ------------------------------------------------------------------------------------------ worker

def worker(runtime: str, artifact: str, threads: int, img_size: int, options: str = "{}") -> None:
    """Load one artifact, then answer `N` lines on stdin with N timings (ms, JSON list) on stdout."""
    from edgevit.backends import open_runner

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, img_size, img_size)).astype(np.float32)
    runner = open_runner(runtime, Path(artifact), threads=threads, **json.loads(options))
    for _ in range(5):  # warm-up
        runner.infer(x)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        n = int(line)
        if n <= 0:
            break
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            runner.infer(x)
            times.append((time.perf_counter_ns() - t0) / 1e6)
        print(json.dumps(times), flush=True)
    runner.close()


# ------------------------------------------------------------------------------------------ parent



def export_all(models: list[str], workdir: Path, reuse: bool) -> tuple[dict[str, Path], dict[str, Any]]:
    from edgevit.artifact import read_record
    from edgevit.export import export

    arts: dict[str, Path] = {}
    facts: dict[str, Any] = {}
    for name in models:
        ckpt, weights = save_fixture_checkpoint(name, workdir)
        for target, precision, _, suffix in CASES:
            key = f"{name}/{target}/{precision}"
            out = workdir / f"{name}_{precision}{suffix}"
            side = out.with_name(out.name + ".json")
            if not (reuse and out.exists() and side.is_file()):
                print(f"[export] {key}", flush=True)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    export(name, target=target, precision=precision, output=out, checkpoint=ckpt,
                           preset="x86" if (target == "onnx" and precision == "int8") else None)
            rec = read_record(out)
            ver = rec.verification or {}
            o = (ver.get("outputs") or [{}])[0]
            exp = rec.export
            facts[key] = {
                "weights": weights, "verified": ver.get("passed"), "cosine": o.get("cosine"),
                "top1_agreement": o.get("top1_agreement"), "max_abs_error": o.get("max_abs_error"),
                "size_mb": round(rec.size_bytes / 1e6, 3),
                **({"delegated_nodes": exp["delegated_nodes"], "non_delegated_nodes": exp["non_delegated_nodes"]}
                   if "delegated_nodes" in exp else {}),
                **({"layers": exp["layers"]} if "layers" in exp else {}),
                **({"int8_layers": exp["int8"]["int8_layer_count"], "int8_histogram": exp["int8"]["histogram"]}
                   if "int8_layer_count" in (exp.get("int8") or {}) else {}),  # ncnn int8 only
            }
            arts[key] = out
        for suffix, case, _ in VARIANTS:
            arts[f"{name}/{case}-{suffix}"] = arts[f"{name}/{case}"]
            facts[f"{name}/{case}-{suffix}"] = facts[f"{name}/{case}"]
    return arts, facts


def measure(arts: dict[str, Path], *, threads: int, rounds: int, block: int, img_size: int) -> dict[str, Any]:
    """Interleaved timing over one worker process per artifact; returns per-key samples and load."""
    procs: dict[str, subprocess.Popen[str]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    try:
        for key, path in arts.items():
            runtime = {"onnx": "onnxruntime", "ncnn": "ncnn", "executorch": "executorch"}[key.split("/")[1]]
            options = next((o for sfx, case, o in VARIANTS if key.endswith(f"{case}-{sfx}")), {})
            if runtime == "onnxruntime":  # idle workers' spinning pool threads would steal the timed one's cores
                options = {**options, "spinning": False}
            procs[key] = subprocess.Popen(
                [sys.executable, __file__, "--worker", runtime, str(path), str(threads), str(img_size),
                 json.dumps(options)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for key, p in procs.items():  # wait until every worker has loaded and warmed up
            while True:
                line = p.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise RuntimeError(f"worker {key} died while loading")
                if line.startswith("{"):
                    break
        samples: dict[str, list[float]] = {k: [] for k in procs}
        loads: list[float] = []
        keys = list(procs)
        t0 = time.monotonic()
        for r in range(rounds):
            order = keys[r % len(keys):] + keys[: r % len(keys)]  # rotate who goes first
            for key in order:
                p = procs[key]
                p.stdin.write(f"{block}\n")  # type: ignore[union-attr]
                p.stdin.flush()  # type: ignore[union-attr]
                samples[key] += json.loads(p.stdout.readline())  # type: ignore[union-attr]
            loads.append(os.getloadavg()[0])
        wall = time.monotonic() - t0
    finally:
        for p in procs.values():
            try:
                p.stdin.write("0\n")  # type: ignore[union-attr]
                p.stdin.close()  # type: ignore[union-attr]
            except Exception:
                pass
            p.wait(timeout=30)
    return {"samples": samples, "load_1min": loads, "wall_s": wall}


def summarize(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
            "p10_ms": float(np.percentile(a, 10)), "min_ms": float(a.min()), "runs": int(a.size)}


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        f"# Host latency: ncnn and ExecuTorch vs ONNX Runtime ({env['machine']}, {report['threads']} threads, batch 1)",
        "",
        f"{env['cpu_count']} logical CPUs; load average (1 min) during the run: median "
        f"{env['load_median']:.1f}, max {env['load_max']:.1f} (the benchmark's own idle workers count in it; "
        "on a shared machine absolute numbers inflate, the interleaved ratios stay usable). Versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "",
        "| model | runtime | precision | median ms | p90 ms | p10 ms | time / ORT fp32 (< 1 faster) | verified | cosine | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in report["results"].items():
        name, target, precision = key.split("/")
        base = report["results"].get(f"{name}/onnx/fp32", {}).get("median_ms")
        f = report["facts"].get(key, {})
        note = ""
        if "delegated_nodes" in f:
            note = f"XNNPACK {f['delegated_nodes']} nodes, {f['non_delegated_nodes']} outside"
        elif "int8_layers" in f:
            note = f"{f['layers']} ncnn layers, {f['int8_layers']} int8 (x86 int8 kernels, not ARM's)"
        elif "layers" in f:
            note = f"{f['layers']} ncnn layers"
        ratio = f"{s['median_ms'] / base:.2f}x" if base else ""
        cos = "" if f.get("cosine") is None else f"{f['cosine']:.5f}"
        lines.append(f"| {name} | {target} | {precision} | {s['median_ms']:.1f} | {s['p90_ms']:.1f} | "
                     f"{s['p10_ms']:.1f} | {ratio} | {f.get('verified')} | {cos} | {note} |")
    lines += ["", "ncnn int8: ncnn's int8 format written by edgevit, run by ncnn's x86 int8 kernels (its ARM "
              "int8 kernels are different code: this row says nothing about the Cortex-A17); "
              "ncnn fp16 = fp16 weight storage (x86 computes in fp32). ncnn fp32-nopack = the same fp32 "
              "artifact with `use_packing_layout` off (runner option packing=False).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5] if len(argv) > 5 else "{}")
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--block", type=int, default=5, help="timed runs per worker per round")
    ap.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "edgevit" / "speed")
    ap.add_argument("--reuse", action="store_true", help="reuse artifacts already in --workdir")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    arts, facts = export_all(args.models, args.workdir, args.reuse)
    results: dict[str, Any] = {}
    loads: list[float] = []
    for name in args.models:  # one model at a time: 6 workers share the cores, not 18
        mine = {k: v for k, v in arts.items() if k.startswith(name + "/")}
        print(f"[measure] {name}: {len(mine)} artifacts, {args.rounds} rounds x {args.block} runs", flush=True)
        m = measure(mine, threads=args.threads, rounds=args.rounds, block=args.block, img_size=224)
        results.update({k: summarize(v) for k, v in m["samples"].items()})
        loads += m["load_1min"]
    versions = {d: metadata.version(d) for d in ("onnxruntime", "ncnn", "executorch", "torch")}
    report = {
        "threads": args.threads, "batch": 1, "rounds": args.rounds, "block": args.block,
        "results": results, "facts": facts,
        "environment": {"machine": platform.machine(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(), "load_median": float(np.median(loads)),
                        "load_max": float(np.max(loads)), "versions": versions},
    }
    md = markdown(report)
    print(md)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
