#!/usr/bin/env python3
"""ONNX Runtime vs OpenVINO on this host: edgevit's deploy-form artifacts and the naive export of the
official code, paired and interleaved in one process (a script, not a test).

Per model (fixture weights, so cosines mean something), batch 1, `--threads` threads:

- naive ONNX: plain `torch.onnx.export` (dynamo) of the train form, as a user would without edgevit,
  run in ONNX Runtime (`naive_ort_fp32`, the baseline of every ratio) and in OpenVINO (`naive_ov_fp32`,
  OpenVINO reads the ONNX file directly);
- edgevit ONNX fp32 / int8 in ONNX Runtime (`ort_fp32`, `ort_int8`);
- edgevit OpenVINO IR fp32 / fp16 / int8 (`ov_fp32`, `ov_fp16`, `ov_int8`) in OpenVINO with the runner's
  defaults (latency hint; fp32 and int8 computed in f32, fp16 in the CPU's native half precision, which
  is bf16 on CPUs with AVX512-BF16).

Every round runs each variant once in a rotating order (`edgevit.bench.paired`; ORT without idle
spinning), so drift from other processes hits all alike; the report gives medians, p10-p90 and the
median and p10-p90 of the per-round ratios to the naive ORT fp32 path and of OpenVINO int8 to
OpenVINO fp32, the worst per-photo cosine to PyTorch, `lscpu` flags and the load average.

    python benchmarks/openvino_speed.py --rounds 100 --json benchmarks/results/openvino_speed_host_t2.json \\
        --markdown benchmarks/results/openvino_speed_host_t2.md
    python benchmarks/openvino_speed.py --models cas_vit_xs --rounds 10      # a quick check that it runs
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _common import MEAN, STD, cosine_rows, save_fixture_checkpoint, write_report

from edgevit.bench.paired import interleaved, speedup, summary

MODELS = ("fcaformer_l1", "cas_vit_xs", "cas_vit_s", "stvit_small")
BASE = "naive_ort_fp32"


def lscpu() -> dict[str, Any]:
    """CPU model and flags as lscpu prints them (the int8 and bf16 kernels depend on them)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": platform.processor(), "flags": []}
    fields = dict(ln.split(":", 1) for ln in out.splitlines() if ":" in ln)
    flags = fields.get("Flags", "").split()
    keep = [f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4")) or f in ("vnni",)]
    return {"model": fields.get("Model name", "").strip(), "cpus": fields.get("CPU(s)", "").strip(),
            "isa_flags": keep, "flags": flags}


def naive_onnx(name: str, checkpoint: Path | None, path: Path) -> Path:
    """The official (train-form) structure exported as a user would: plain dynamo export, batch 1."""
    import torch

    from edgevit.export import build_reference

    model, _ = build_reference(name, checkpoint=checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), input_names=["input"],
                          output_names=["logits"], dynamo=True, verbose=False)
    return path


def edgevit_artifacts(name: str, checkpoint: Path | None, tmp: Path, threads: int) -> tuple[dict[str, Path], dict]:
    """edgevit's ONNX fp32/int8 and OpenVINO fp32/fp16/int8 (export-time verification off: cosines are
    measured here on the same photos for every variant). A refused int8 is recorded, not fatal."""
    from edgevit.errors import ExportError
    from edgevit.export import export

    plan = {"ort_fp32": ("onnx", "fp32", ".onnx"), "ort_int8": ("onnx", "int8", ".onnx"),
            "ov_fp32": ("openvino", "fp32", ".openvino"), "ov_fp16": ("openvino", "fp16", ".openvino"),
            "ov_int8": ("openvino", "int8", ".openvino")}
    paths, notes = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, (target, precision, suffix) in plan.items():
            try:
                rep = export(name, target=target, precision=precision, checkpoint=checkpoint, verify=False,
                             output=tmp / f"{name}_{key}{suffix}", threads=threads)
            except ExportError as exc:
                notes[key] = f"not exported: {exc}"
                continue
            paths[key] = rep.artifact
            if target == "openvino" and precision == "int8":
                notes[key] = rep.info["export"]["int8_summary"]
                notes["ov_int8_float_ops"] = [f"{f['name']} ({f['reason']})" for f in rep.info["export"]["int8"]["float_ops"]]
    return paths, notes


def runners(paths: dict[str, Path], threads: int) -> dict[str, Any]:
    from edgevit.runtimes import open_runner

    out = {}
    for key, path in paths.items():
        if key.startswith(("naive_ort", "ort_")):
            out[key] = open_runner("onnxruntime", path, threads=threads, spinning=False)
        else:
            out[key] = open_runner("openvino", path, threads=threads)
    return out


def bench_model(name: str, threads: int, rounds: int, warmup: int) -> dict[str, Any]:
    import torch

    from edgevit.export import build_reference
    from edgevit.quantize.data import embedded_eval_images

    photos = embedded_eval_images(224, MEAN, STD)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        checkpoint, source = save_fixture_checkpoint(name, tmp)
        model, _ = build_reference(name, checkpoint=checkpoint)
        with torch.no_grad():
            ref = model(torch.from_numpy(photos)).numpy()
        naive = naive_onnx(name, checkpoint, tmp / f"{name}_naive.onnx")
        paths, notes = edgevit_artifacts(name, checkpoint, tmp, threads)
        paths = {BASE: naive, "naive_ov_fp32": naive, **paths}
        rs = runners(paths, threads)
        cosine = {}
        for key, r in rs.items():
            out = np.concatenate([r.infer(photos[i : i + 1]) for i in range(len(photos))])
            cosine[key] = float(cosine_rows(ref, out).min())
        precision = {k: r.inference_precision() for k, r in rs.items() if hasattr(r, "inference_precision")}
        samples = interleaved(rs, photos[:1], rounds, warmup)
        for r in rs.values():
            r.close()
    res: dict[str, Any] = {"weights": source, "notes": notes, "variants": {}}
    for key, s in samples.items():
        res["variants"][key] = {**summary(s), "speedup_vs_naive_ort_fp32": speedup(samples[BASE], s),
                                "min_cosine_vs_torch": cosine[key], "inference_precision": precision.get(key, ""),
                                "samples_ms": [round(t, 4) for t in s]}
    if "ov_int8" in samples:
        res["ov_int8_vs_ov_fp32"] = speedup(samples["ov_fp32"], samples["ov_int8"])
    if "ort_int8" in samples:
        res["ort_int8_vs_ort_fp32"] = speedup(samples["ort_fp32"], samples["ort_int8"])
    return res


def markdown(report: dict[str, Any]) -> str:
    env = report["env"]
    lines = [
        f"# ONNX Runtime vs OpenVINO, {env['cpu']['model']} ({env['threads']} threads, batch 1)",
        "",
        (f"ORT {env['onnxruntime']}, OpenVINO {env['openvino']}, torch {env['torch']}; {env['rounds']} paired rounds; "
         f"load average {env['load_avg_at_start']} at start, {env['load_avg_at_end']} at end ({env['cores']} cores). "
         f"ISA flags: {' '.join(env['cpu']['isa_flags'])}."),
        "",
        "| model | variant | median ms | p10-p90 ms | vs naive ORT fp32 (p10-p90) | worst cosine vs PyTorch | computes in |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for name, res in report["results"].items():
        for key, v in res["variants"].items():
            sp = v["speedup_vs_naive_ort_fp32"]
            lines.append(f"| {name} | {key} | {v['median_ms']:.2f} | {v['p10_ms']:.2f}-{v['p90_ms']:.2f} | "
                         f"{sp['median']:.2f}x ({sp['p10']:.2f}-{sp['p90']:.2f}) | {v['min_cosine_vs_torch']:.5f} | "
                         f"{v['inference_precision'] or 'f32'} |")
    lines += ["", "| model | OpenVINO int8 / fp32 (p10-p90) | ORT int8 / fp32 (p10-p90) | OpenVINO int8 |", "|---|---|---|---|"]
    for name, res in report["results"].items():
        ov, ort = res.get("ov_int8_vs_ov_fp32"), res.get("ort_int8_vs_ort_fp32")

        def fmt(s: dict[str, float] | None) -> str:
            return "—" if s is None else f"{s['median']:.2f}x ({s['p10']:.2f}-{s['p90']:.2f})"

        lines.append(f"| {name} | {fmt(ov)} | {fmt(ort)} | {res['notes'].get('ov_int8', '')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None, help="raw samples, environment and summary")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    import onnxruntime
    import openvino
    import torch

    torch.set_num_threads(args.threads)
    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
        "openvino": openvino.__version__.split("-")[0], "cpu": lscpu(), "cores": os.cpu_count(),
        "threads": args.threads, "rounds": args.rounds, "load_avg_at_start": [round(v, 2) for v in os.getloadavg()],
        "note": "variants run interleaved in one process: compare them within a run; the load averages say "
                "whether other work shared the cores",
    }
    results = {}
    for name in args.models:
        print(f"[{name}] exporting and timing", flush=True)
        results[name] = bench_model(name, args.threads, args.rounds, args.warmup)
    env["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report = {"env": env, "results": results}
    write_report(report, markdown(report), args.json, args.markdown)


if __name__ == "__main__":
    main()
