"""Deploy form vs naive export of the train form: ONNX Runtime fp32, batch 1, pinned threads.

Runs both sessions in paired, interleaved order (A B, B A, ...) so that drift on a shared machine
hits both alike, and reports the median latency of each and the median of the per-pair speedups.
Not a test: `python benchmarks/deploy_speedup.py [--models cas_vit_xs ...] [--runs 100]`.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import edgevit
from edgevit.bench.paired import interleaved, ort_runners, speedup, summary
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


def bench(name: str, threads: int, warmup: int, runs: int, dynamo: bool, workdir: Path) -> dict[str, object]:
    img = int(model_info(name).default_cfg["img_size"])
    train = edgevit.create_model(name).eval()
    paths = {"naive": workdir / f"{name}_naive.onnx", "deploy": workdir / f"{name}_deploy.onnx"}
    export(train, paths["naive"], img, dynamo)
    export(deploy(train), paths["deploy"], img, dynamo)
    runners = ort_runners(paths, threads)
    x = np.random.default_rng(0).standard_normal((1, 3, img, img)).astype(np.float32)
    a, b = (runners[k].infer(x) for k in ("naive", "deploy"))
    s = interleaved(runners, x, runs, warmup)
    import onnx

    nodes = {k: len(onnx.load(str(p)).graph.node) for k, p in paths.items()}
    return {
        "model": name,
        "exporter": "dynamo" if dynamo else "torchscript",
        "threads": threads,
        "runs": runs,
        "nodes": nodes,
        "max_abs_diff": float(np.abs(a - b).max()),
        "naive_ms": summary(s["naive"]),
        "deploy_ms": summary(s["deploy"]),
        "speedup": speedup(s["naive"], s["deploy"]),
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
                  f"naive {r['naive_ms']['median_ms']:.2f} ms (p10-p90 {r['naive_ms']['p10_ms']:.2f}-"
                  f"{r['naive_ms']['p90_ms']:.2f}), deploy {r['deploy_ms']['median_ms']:.2f} ms (p10-p90 "
                  f"{r['deploy_ms']['p10_ms']:.2f}-{r['deploy_ms']['p90_ms']:.2f}), speedup "
                  f"{r['speedup']['median']:.3f}x (p10-p90 {r['speedup']['p10']:.3f}-{r['speedup']['p90']:.3f}), nodes {r['nodes']['naive']} -> "
                  f"{r['nodes']['deploy']}, max diff {r['max_abs_diff']:.2g}")
    if args.json:
        env = {"torch": torch.__version__, "onnxruntime": ort.__version__, "python": sys.version.split()[0]}
        args.json.write_text(json.dumps({"env": env, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
