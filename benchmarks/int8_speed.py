"""ORT int8 vs fp32 latency, naive path vs edgevit (a script, not a test; data lives beside it).

For each model: naive fp32 (plain `torch.onnx.export` of the train form), naive int8 (that file +
`quantize_static` with its defaults), edgevit fp32 and int8 (`edgevit.export`). ORT CPU, batch 1,
`--threads` intra-op threads, paired interleaved runs (every round runs each variant once, in a
rotating order, so load from other processes hits all variants alike), median and p90; cosine to
the PyTorch train form on the photos scikit-image ships.

    python benchmarks/int8_speed.py fcaformer_l1 cas_vit_xs stvit_small --rounds 100 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _common import cosine_rows, save_fixture_checkpoint
from edgevit.bench.paired import interleaved, ort_runners, speedup, summary




def naive_export(name: str, tmp: Path, calib: np.ndarray, checkpoint: Path | None) -> dict[str, Path]:
    """The naive path: plain export of the official (train-form) structure + default quantize_static."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from edgevit.models import build_reference

    model = build_reference(name, checkpoint=checkpoint)
    fp32 = tmp / f"{name}_naive_fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(calib[:1]),), str(fp32), input_names=["input"],
                          output_names=["logits"], dynamo=True, verbose=False)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"input": x[None]}

    int8 = tmp / f"{name}_naive_int8.onnx"
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ)
    return {"naive_fp32": fp32, "naive_int8": int8}


def edgevit_export(name: str, tmp: Path, **kw: Any) -> dict[str, Path]:
    from edgevit.export import export

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for prec in ("fp32", "int8"):
            r = export(name, precision=prec, output=tmp / f"{name}_edgevit_{prec}.onnx", verify=False, **kw)
            out[f"edgevit_{prec}"] = r.artifact
    return out


def bench_model(name: str, threads: int, rounds: int, weights: str = "fixture", **kw: Any) -> dict[str, Any]:
    import torch

    from edgevit.models import build_reference
    from edgevit.quantize.data import embedded_eval_images, from_embedded

    mean, std, size = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224
    calib = from_embedded(img_size=size, mean=mean, std=std).calib
    photos = embedded_eval_images(size, mean, std)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        checkpoint, source = save_fixture_checkpoint(name, tmp) if weights == "fixture" else (None, "random init")
        model = build_reference(name, checkpoint=checkpoint)
        with torch.no_grad():
            ref = model(torch.from_numpy(photos)).numpy()
        paths = {**naive_export(name, tmp, calib, checkpoint),
                 **edgevit_export(name, tmp, checkpoint=checkpoint, **kw)}
        runners = ort_runners(paths, threads)
        cosine = {}
        for k, r in runners.items():
            out = np.concatenate([r.infer(photos[i : i + 1]) for i in range(len(photos))])
            cosine[k] = float(cosine_rows(ref, out).min())
        samples = interleaved(runners, photos[:1], rounds)
    base = samples["naive_fp32"]
    return {k: {**summary(v), "speedup_vs_naive_fp32": speedup(base, v), "min_cosine_vs_torch": cosine[k],
                "weights": source, "samples_ms": [round(t, 4) for t in v]} for k, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=["fcaformer_l1", "cas_vit_xs", "stvit_small"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--preset", default=None)
    ap.add_argument("--weights", choices=["fixture", "random"], default="fixture",
                    help="fixture: the conformance fixture's seeded official-layout weights (random init makes "
                         "FcaFormer's logits ~1e-19, so cosine would say nothing)")
    ap.add_argument("--json", type=Path, default=None, help="also write raw samples and environment here")
    args = ap.parse_args()
    import onnxruntime
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
           "load_avg_at_start": os.getloadavg(),
           "note": "variants run interleaved in one process: compare them within a run; the load averages say "
                   "whether other work shared the cores"}
    results = {}
    for name in args.models:
        res = bench_model(name, args.threads, args.rounds, weights=args.weights, preset=args.preset)
        results[name] = res
        print(f"\n{name} (ORT {onnxruntime.__version__}, {args.threads} threads, batch 1, {args.rounds} paired rounds)")
        print(f"{'variant':14} {'median ms':>10} {'p10-p90 ms':>14} {'vs naive fp32 (p10-p90)':>24} {'cosine':>9}")
        for k, v in res.items():
            sp = v["speedup_vs_naive_fp32"]
            print(f"{k:14} {v['median_ms']:10.2f} {v['p10_ms']:6.2f}-{v['p90_ms']:<7.2f} {sp['median']:8.2f}x "
                  f"({sp['p10']:.2f}-{sp['p90']:.2f}){'':6} {v['min_cosine_vs_torch']:9.5f}")
    env["load_avg_at_end"] = os.getloadavg()
    print(f"\nload average start {env['load_avg_at_start']}, end {env['load_avg_at_end']} (above the core count: other work shared the cores)")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "results": results}, indent=1))


if __name__ == "__main__":
    main()
