#!/usr/bin/env python3
"""The accuracy half of issue 20's goal with the weights the goal names: every edgevit variant of the
openvino_speed study exported from the conformance fixture's official-layout weights, and its worst
per-photo cosine to PyTorch on the 13 embedded photos (no timing: latency does not depend on the
weights' values, the graph is the same). A script, not a test.

    python benchmarks/fixture_cosine.py --json benchmarks/results/fixture_cosine.json \
        --markdown benchmarks/results/fixture_cosine.md
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cosine_rows, save_fixture_checkpoint, write_report

MODELS = ("fcaformer_l1", "cas_vit_xs", "cas_vit_s", "stvit_small")
VARIANTS = {"ort_fp32": ("onnx", "fp32"), "ov_fp32": ("openvino", "fp32"), "ov_fp16": ("openvino", "fp16"),
            "et_fp32": ("executorch", "fp32")}
GOAL = 0.995


def model_cosines(name: str, variants: list[str], threads: int) -> dict[str, Any]:
    """variant -> worst photo cosine to PyTorch (or the one-line reason it has none)."""
    import torch

    from edgevit.backends import get_backend, open_runner
    from edgevit.export import export
    from edgevit.models import build_reference, model_info
    from edgevit.quantize.data import embedded_eval_images

    cfg = model_info(name).default_cfg
    photos = embedded_eval_images(224, cfg["mean"], cfg["std"])
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        ckpt, label = save_fixture_checkpoint(name, Path(d))
        with torch.no_grad():
            ref = build_reference(name, checkpoint=ckpt)(torch.from_numpy(photos)).numpy()
        out["weights"] = label
        out["logits_std"] = float(ref.std())
        for key in variants:
            target, precision = VARIANTS[key]
            print(f"  [{name}] {key}", file=sys.stderr, flush=True)
            path = Path(d) / f"{name}_{key}{get_backend(target).suffix}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    art = export(name, target=target, precision=precision, checkpoint=ckpt, output=path,
                                 verify=False).artifact
                runtime = get_backend(target).runtime.key
                with open_runner(runtime, art, threads=threads) as r:
                    got = np.concatenate([r.infer(photos[i : i + 1]) for i in range(len(photos))])
                out[key] = {"cosine_min": float(cosine_rows(ref, got).min()),
                            "top1_agreement": float((ref.argmax(1) == got.argmax(1)).mean())}
            except Exception as exc:  # noqa: BLE001 - recorded, the other variants still run
                out[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Worst photo cosine to PyTorch with the conformance fixture weights (13 embedded photos)", "",
             f"Goal: >= {GOAL}. No timing here (see openvino_speed_*.md for latency).", "",
             "| model | " + " | ".join(report["variants"]) + " |", "|---|" + "---:|" * len(report["variants"])]
    for name, res in report["models"].items():
        cells = [f"{res[v]['cosine_min']:.5f}" if "cosine_min" in res[v] else "error" for v in report["variants"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", *[f"- {n}: {r['weights']}, logits std {r['logits_std']:.3f}" for n, r in report["models"].items()]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    report: dict[str, Any] = {"variants": args.variants, "models": {}}
    for name in args.models:
        report["models"][name] = model_cosines(name, args.variants, args.threads)
        write_report(report, markdown(report), args.json, args.markdown)


if __name__ == "__main__":
    main()
