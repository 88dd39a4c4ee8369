#!/usr/bin/env python3
"""Issue 20's study on this host: edgevit's artifacts in ONNX Runtime, OpenVINO, ExecuTorch and ncnn
against the naive export of the official code in the same four runtimes, paired and interleaved in one
process (a script, not a test).

Per model (the conformance fixture's weights, or edgevit's seeded ones where there is no fixture, saved
as a checkpoint so the naive export gets the same ones), batch 1, `--threads` threads:

- naive: the train form exported as a user would without edgevit: plain `torch.onnx.export` (dynamo)
  run in ONNX Runtime (`naive_ort_fp32`, the baseline of every ratio) and in OpenVINO (`naive_ov_fp32`,
  which reads the ONNX file directly); the train form through the ExecuTorch and ncnn converters
  (`naive_et_fp32`, `naive_ncnn_fp32`: `torch.export` + XNNPACK lowering, pnnx). A converter that fails
  on the train form is recorded with its error;
- edgevit: `edgevit export` of the deploy form per runtime (`--runtimes`) at fp32 and int8, OpenVINO
  also fp16 (`ort_*`, `ov_*`, `et_*`, `ncnn_*`); a refused int8 (slower than fp32) is recorded, not fatal.

Every round runs each variant once in a rotating order (`edgevit.bench.paired`; ORT without idle
spinning), so drift from other processes hits all alike. The report gives medians, p10-p90, the per-round
ratios to the naive ORT fp32 path, OpenVINO int8 / fp32, the worst per-photo cosine to PyTorch, and the
goal check: edgevit's best path (the fastest edgevit variant whose worst cosine on the photos is >= 0.995)
against the best naive path (paired ratio >= 1) and against naive ORT fp32 (>= 1.3x); plus `lscpu` flags
and the load average at start and end.

    python benchmarks/openvino_speed.py --rounds 100 --json benchmarks/results/openvino_speed_host_t2.json \\
        --markdown benchmarks/results/openvino_speed_host_t2.md
    python benchmarks/openvino_speed.py --models cas_vit_xs --rounds 10 --runtimes onnxruntime openvino  # quick
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
from _common import cosine_rows, save_fixture_checkpoint, write_report

from edgevit.bench.paired import interleaved, speedup, summary

MODELS = ("fcaformer_l1", "cas_vit_xs", "cas_vit_s", "stvit_small")
RUNTIMES = ("onnxruntime", "openvino", "executorch", "ncnn")
BASE = "naive_ort_fp32"
COSINE_GOAL = 0.995  # worst photo, to PyTorch
SPEED_GOAL = 1.3  # edgevit's best path vs naive ORT fp32
# variant prefix -> (runtime, edgevit target, artifact suffix, precisions edgevit exports)
EDGEVIT = {"ort": ("onnxruntime", "onnx", ".onnx", ("fp32", "int8")),
           "ov": ("openvino", "openvino", ".openvino", ("fp32", "fp16", "int8")),
           "et": ("executorch", "executorch", ".pte", ("fp32", "int8")),
           "ncnn": ("ncnn", "ncnn", ".ncnn", ("fp32", "int8"))}
RUNTIME_OF = {prefix: spec[0] for prefix, spec in EDGEVIT.items()}


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


def naive_onnx(model: Any, path: Path) -> Path:
    """The official (train-form) structure exported as a user would: plain dynamo export, batch 1."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), input_names=["input"],
                          output_names=["logits"], dynamo=True, verbose=False)
    return path


def naive_converter(target: str, name: str, model: Any, path: Path) -> Path:
    """The train form through a target's converter (no deploy rewrites): what `torch.export` + XNNPACK or
    pnnx give on the official code."""
    import torch

    from edgevit.backends import ExportRequest, get_backend

    req = ExportRequest(model_name=name, model=model, example=torch.zeros(1, 3, 224, 224), output=path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(get_backend(target).export(req).artifact)


def naive_artifacts(name: str, model: Any, tmp: Path, runtimes: list[str]) -> tuple[dict[str, tuple[str, Path]], dict]:
    """variant -> (runtime, artifact) of the naive exports; failures are recorded by variant."""
    onnx = naive_onnx(model, tmp / f"{name}_naive.onnx")
    out = {BASE: ("onnxruntime", onnx)}
    notes: dict[str, str] = {}
    if "openvino" in runtimes:
        out["naive_ov_fp32"] = ("openvino", onnx)
    for key, target, suffix in (("naive_et_fp32", "executorch", ".pte"), ("naive_ncnn_fp32", "ncnn", ".ncnn")):
        if target not in runtimes:
            continue
        try:
            out[key] = (target, naive_converter(target, name, model, tmp / f"{name}_{key}{suffix}"))
        except Exception as exc:  # noqa: BLE001 - a converter failing on the train form is a finding
            notes[key] = f"naive export failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
    return out, notes


def edgevit_artifacts(name: str, checkpoint: Path, tmp: Path, threads: int,
                      runtimes: list[str], skip: tuple[str, ...] = ()) -> tuple[dict[str, tuple[str, Path]], dict]:
    """edgevit's exports per runtime and precision (export-time verification off: cosines are measured
    here on the same photos for every variant). A refused or failed export is recorded, not fatal."""
    from edgevit.errors import EdgeVitError
    from edgevit.export import export

    paths: dict[str, tuple[str, Path]] = {}
    notes: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for prefix, (runtime, target, suffix, precisions) in EDGEVIT.items():
            if runtime not in runtimes:
                continue
            for precision in precisions:
                key = f"{prefix}_{precision}"
                if key in skip:
                    notes[key] = "skipped (--skip)"
                    continue
                print(f"  export {key}", flush=True)
                try:
                    rep = export(name, target=target, precision=precision, checkpoint=checkpoint, verify=False,
                                 output=tmp / f"{name}_{key}{suffix}", threads=threads)
                except EdgeVitError as exc:
                    notes[key] = f"not exported: {exc}"
                    continue
                except Exception as exc:  # noqa: BLE001  a bug in one variant must not lose the run's other results
                    notes[key] = f"export crashed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                    continue
                paths[key] = (runtime, rep.artifact)
                if summary_line := rep.record.export.get("int8_summary"):
                    notes[key] = summary_line
    return paths, notes


def runners(paths: dict[str, tuple[str, Path]], threads: int) -> dict[str, Any]:
    from edgevit.backends import open_runner

    out = {}
    for key, (runtime, path) in paths.items():
        options = {"spinning": False} if runtime == "onnxruntime" else {}
        out[key] = open_runner(runtime, path, threads=threads, **options)
    return out


def goals(samples: dict[str, list[float]], cosine: dict[str, float]) -> dict[str, Any]:
    """edgevit's best path (fastest median among edgevit variants within the cosine goal) against the
    fastest naive variant and against naive ORT fp32, as paired per-round ratios."""
    median = {k: float(np.median(s)) for k, s in samples.items()}
    ours = [k for k in samples if not k.startswith("naive") and cosine[k] >= COSINE_GOAL]
    naive = [k for k in samples if k.startswith("naive")]
    if not ours:
        return {"edgevit_best": None, "why": f"no edgevit variant reaches worst cosine {COSINE_GOAL}"}
    best = min(ours, key=median.__getitem__)
    best_naive = min(naive, key=median.__getitem__)
    vs_naive, vs_base = speedup(samples[best_naive], samples[best]), speedup(samples[BASE], samples[best])
    return {"edgevit_best": best, "edgevit_best_ms": median[best], "edgevit_best_cosine": cosine[best],
            "naive_best": best_naive, "naive_best_ms": median[best_naive],
            "vs_naive_best": vs_naive, "vs_naive_ort_fp32": vs_base,
            "at_least_as_fast_as_naive_best": vs_naive["median"] >= 1.0,
            f"at_least_{SPEED_GOAL}x_naive_ort_fp32": vs_base["median"] >= SPEED_GOAL,
            "cosine_goal": COSINE_GOAL}


def bench_model(name: str, threads: int, rounds: int, warmup: int, runtimes: list[str],
                skip: tuple[str, ...] = ()) -> dict[str, Any]:
    import torch

    from edgevit.models import build_reference, model_info
    from edgevit.quantize.data import embedded_eval_images

    cfg = model_info(name).default_cfg
    photos = embedded_eval_images(224, cfg["mean"], cfg["std"])
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        checkpoint, source = save_fixture_checkpoint(name, tmp)
        model = build_reference(name, checkpoint=checkpoint)
        with torch.no_grad():
            ref = model(torch.from_numpy(photos)).numpy()
        naive, notes = naive_artifacts(name, model, tmp, runtimes)
        ours, more = edgevit_artifacts(name, checkpoint, tmp, threads, runtimes, skip)
        notes.update(more)
        rs = runners({**naive, **ours}, threads)
        cosine = {}
        for key, r in list(rs.items()):
            try:
                out = np.concatenate([r.infer(photos[i : i + 1]) for i in range(len(photos))])
            except Exception as exc:  # noqa: BLE001 - a program its runtime cannot run is a finding, not a crash
                notes[key] = f"exported but fails in its runtime: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                rs.pop(key).close()
                continue
            cosine[key] = float(cosine_rows(ref, out).min())
        precision = {k: r.inference_precision() for k, r in rs.items() if hasattr(r, "inference_precision")}
        print(f"  timing {len(rs)} variants x {rounds} rounds", flush=True)
        samples = interleaved(rs, photos[:1], rounds, warmup)
        for r in rs.values():
            r.close()
    res: dict[str, Any] = {"weights": source, "notes": notes, "variants": {}}
    for key, s in samples.items():
        runtime = ({**naive, **ours}[key])[0]
        res["variants"][key] = {**summary(s), "runtime": runtime, "speedup_vs_naive_ort_fp32": speedup(samples[BASE], s),
                                "min_cosine_vs_torch": cosine[key], "inference_precision": precision.get(key, ""),
                                "samples_ms": [round(t, 4) for t in s]}
    for prefix in ("ov", "ort", "et", "ncnn"):
        if f"{prefix}_int8" in samples and f"{prefix}_fp32" in samples:
            res[f"{prefix}_int8_vs_{prefix}_fp32"] = speedup(samples[f"{prefix}_fp32"], samples[f"{prefix}_int8"])
    res["goals"] = goals(samples, cosine)
    return res


def _ratio(s: dict[str, float] | None) -> str:
    return "—" if s is None else f"{s['median']:.2f}x ({s['p10']:.2f}-{s['p90']:.2f})"


def markdown(report: dict[str, Any]) -> str:
    env = report["env"]
    lines = [
        f"# edgevit vs the naive export in ORT, OpenVINO, ExecuTorch, ncnn: {env['cpu']['model']} "
        f"({env['threads']} threads, batch 1)",
        "",
        (f"ORT {env['onnxruntime']}, OpenVINO {env['openvino']}, torch {env['torch']}; {env['rounds']} paired rounds; "
         f"load average {env['load_avg_at_start']} at start, {env['load_avg_at_end']} at end ({env['cores']} cores). "
         f"ISA flags: {' '.join(env['cpu']['isa_flags'])}. Weights: "
         + "; ".join(f"{m}: {r['weights']}" for m, r in report["results"].items() if "weights" in r) + "."),
        "",
        f"## Goals (edgevit's best path: the fastest edgevit variant with worst photo cosine >= {COSINE_GOAL})",
        "",
        f"| model | edgevit best | ms | best naive | ms | best / best naive (p10-p90) | vs naive ORT fp32 (p10-p90) "
        f"| >= best naive | >= {SPEED_GOAL}x |",
        "|---|---|---:|---|---:|---|---|---|---|",
    ]
    for name, res in report["results"].items():
        g = res["goals"]
        if g["edgevit_best"] is None:
            lines.append(f"| {name} | {g['why']} | | | | | | no | no |")
            continue
        lines.append(f"| {name} | {g['edgevit_best']} | {g['edgevit_best_ms']:.2f} | {g['naive_best']} | "
                     f"{g['naive_best_ms']:.2f} | {_ratio(g['vs_naive_best'])} | {_ratio(g['vs_naive_ort_fp32'])} | "
                     f"{'yes' if g['at_least_as_fast_as_naive_best'] else 'no'} | "
                     f"{'yes' if g[f'at_least_{SPEED_GOAL}x_naive_ort_fp32'] else 'no'} |")
    lines += ["", "## Every variant", "",
              "| model | variant | runtime | median ms | p10-p90 ms | vs naive ORT fp32 (p10-p90) | worst cosine vs PyTorch "
              "| computes in |", "|---|---|---|---:|---:|---|---:|---|"]
    for name, res in report["results"].items():
        for key, v in res["variants"].items():
            lines.append(f"| {name} | {key} | {v['runtime']} | {v['median_ms']:.2f} | {v['p10_ms']:.2f}-{v['p90_ms']:.2f} | "
                         f"{_ratio(v['speedup_vs_naive_ort_fp32'])} | {v['min_cosine_vs_torch']:.5f} | "
                         f"{v['inference_precision'] or '—'} |")
    lines += ["", "## int8 against fp32 in the same runtime", "",
              "| model | OpenVINO | ORT | ExecuTorch | ncnn |", "|---|---|---|---|---|"]
    for name, res in report["results"].items():
        lines.append(f"| {name} | " + " | ".join(_ratio(res.get(f"{p}_int8_vs_{p}_fp32")) for p in ("ov", "ort", "et", "ncnn"))
                     + " |")
    lines += ["", "## Notes (int8 summaries, refusals, naive converters that failed)", ""]
    for name, res in report["results"].items():
        for key, note in res["notes"].items():
            lines.append(f"- {name} {key}: {note}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    ap.add_argument("--skip", nargs="+", default=[], metavar="VARIANT",
                    help="edgevit variants not to export, e.g. et_int8 (recorded as skipped)")
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
        "threads": args.threads, "rounds": args.rounds, "runtimes": args.runtimes, "skipped": args.skip,
        "load_avg_at_start": [round(v, 2) for v in os.getloadavg()],
        "note": "variants run interleaved in one process: compare them within a run; the load averages say "
                "whether other work shared the cores",
    }
    results = {}
    for name in args.models:
        print(f"[{name}] exporting and timing", flush=True)
        results[name] = bench_model(name, args.threads, args.rounds, args.warmup, args.runtimes, tuple(args.skip))
        env["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
        report = {"env": env, "results": results}
        write_report(report, markdown(report), args.json, args.markdown)  # after every model: nothing measured is lost


if __name__ == "__main__":
    main()
