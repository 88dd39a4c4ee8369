"""Deploy form vs naive export of the train form: ONNX Runtime fp32, batch 1, pinned threads.

Runs both sessions in paired, interleaved order (A B, B A, ...) so that drift on a shared machine
hits both alike, and reports the median latency of each and the median of the per-pair speedups.
Not a test: `python benchmarks/deploy_speedup.py [--models cas_vit_xs ...] [--runs 100]`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import edgevit
from edgevit.models import model_info
from edgevit.rewrite import deploy

# families add their representative models here
MODELS = ["cas_vit_xs", "fcaformer_l1", "fcaformer_l2", "stvit_small"]


def export(model: torch.nn.Module, path: Path, img_size: int, dynamo: bool) -> None:
    """Export at batch 1 with the given exporter, as a user would without edgevit's rewrites."""
    x = torch.randn(1, 3, img_size, img_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=dynamo, input_names=["x"], output_names=["logits"])


def session(path: Path, threads: int):  # noqa: ANN201  (onnxruntime is imported lazily)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def paired(sessions: dict[str, object], x: np.ndarray, warmup: int, runs: int) -> dict[str, list[float]]:
    """Per-run latencies (ms) of each session, interleaved and alternating the order per pair."""
    names = list(sessions)
    for _ in range(warmup):
        for n in names:
            sessions[n].run(None, {"x": x})  # type: ignore[attr-defined]
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        for n in names if i % 2 == 0 else names[::-1]:
            t0 = time.perf_counter_ns()
            sessions[n].run(None, {"x": x})  # type: ignore[attr-defined]
            samples[n].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def bench(name: str, threads: int, warmup: int, runs: int, dynamo: bool, workdir: Path) -> dict[str, object]:
    img = int(model_info(name).default_cfg["img_size"])
    train = edgevit.create_model(name).eval()
    paths = {"naive": workdir / f"{name}_naive.onnx", "deploy": workdir / f"{name}_deploy.onnx"}
    export(train, paths["naive"], img, dynamo)
    export(deploy(train), paths["deploy"], img, dynamo)
    sessions = {k: session(p, threads) for k, p in paths.items()}
    x = np.random.default_rng(0).standard_normal((1, 3, img, img)).astype(np.float32)
    a, b = (sessions[k].run(None, {"x": x})[0] for k in ("naive", "deploy"))
    s = paired(sessions, x, warmup, runs)
    ratios = [n / d for n, d in zip(s["naive"], s["deploy"])]
    import onnx

    nodes = {k: len(onnx.load(str(p)).graph.node) for k, p in paths.items()}
    return {
        "model": name,
        "exporter": "dynamo" if dynamo else "torchscript",
        "threads": threads,
        "runs": runs,
        "nodes": nodes,
        "max_abs_diff": float(np.abs(a - b).max()),
        "naive_ms": {"median": statistics.median(s["naive"]), "p90": float(np.percentile(s["naive"], 90))},
        "deploy_ms": {"median": statistics.median(s["deploy"]), "p90": float(np.percentile(s["deploy"], 90))},
        "speedup_median_of_pairs": statistics.median(ratios),
        "samples_ms": s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    p.add_argument("--json", type=Path, help="write raw samples and summary here")
    args = p.parse_args(argv)
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r = bench(name, args.threads, args.warmup, args.runs, args.exporter == "dynamo", Path(tmp))
            results.append(r)
            print(f"{name} [{r['exporter']}, ORT {ort.__version__}, {args.threads} threads, {args.runs} pairs]: "
                  f"naive {r['naive_ms']['median']:.2f} ms (p90 {r['naive_ms']['p90']:.2f}), "
                  f"deploy {r['deploy_ms']['median']:.2f} ms (p90 {r['deploy_ms']['p90']:.2f}), "
                  f"speedup {r['speedup_median_of_pairs']:.3f}x, nodes {r['nodes']['naive']} -> "
                  f"{r['nodes']['deploy']}, max diff {r['max_abs_diff']:.2g}")
    if args.json:
        env = {"torch": torch.__version__, "onnxruntime": ort.__version__, "python": sys.version.split()[0]}
        args.json.write_text(json.dumps({"env": env, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
