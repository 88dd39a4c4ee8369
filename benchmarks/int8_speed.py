"""Does edgevit's int8 pay? int8 vs fp32 on ONNX Runtime, ExecuTorch and OpenVINO (a script, not a test).

For each model, the artifacts `edgevit export` ships (the conformance fixture's weights where ../shared
has them, else edgevit's seeded ones, saved as a checkpoint so every path has the same weights): fp32
and int8 per runtime, int8 being the latency-aware mixed precision of issue 18 (exported
with `int8_force=True`, so that a model where int8 does not pay is still measured; the selection's own
outcome, its float nodes and its refusal are recorded; an export that fails is recorded and the rest
measured). On a CPU with native bf16, OpenVINO int8 is also run with its float ops in bf16 (the run
option `precision_hint=bf16`, same artifact). For the `--naive` models (fcaformer_l1 by
default) also the naive path: a plain `torch.onnx.export` of the official (train-form) code in ORT fp32,
timed twice: in the interleaved rounds (idle spinning off, like every ORT variant there), and at ORT's
defaults (spinning on, as a user runs it) in alternating blocks against the best int8 path.

All variants of one model run in one process, batch 1, `--threads` threads, interleaved: every round
runs each variant once in a rotating order, so load from other processes hits all alike (ORT sessions
do not spin idle threads). Reported: per variant the median and interquartile range (ms); per runtime
the median of the per-round ratios fp32/int8 with its distribution-free 95% interval (sign-test order
statistics, `edgevit.quantize.verdict.median_interval`); the same for the best int8 path against naive
ORT fp32; cosine and top-1 agreement to PyTorch (the official code, same weights) on the photos
scikit-image ships; the CPU's lscpu model and ISA flags (VNNI decides what int8 can reach) and the
load average, since machines and their load differ from one run to the next.

    python benchmarks/int8_speed.py fcaformer_l1 fcaformer_l2 cas_vit_xs cas_vit_s stvit_small cabvit_h_l1 \\
        --threads 2 --rounds 200 --out benchmarks/results/int8_speed_host_t2
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _common import cosine_rows, save_fixture_checkpoint, write_report
from edgevit.bench.paired import interleaved

MODELS = ("fcaformer_l1", "fcaformer_l2", "cas_vit_xs", "cas_vit_s", "stvit_small", "cabvit_h_l1")
# runtime -> (target, suffix); the goals judge ORT and ExecuTorch, OpenVINO competes for the best int8 path
RUNTIMES = {"onnxruntime": ("onnx", ".onnx"), "executorch": ("executorch", ".pte"), "openvino": ("openvino", ".openvino")}
BLOCK_RUNS = 10  # timed runs per block when the naive path runs at ORT's defaults (spinning)
GOAL_COSINE = 0.995  # the best int8 path is the fastest int8 variant at least this close to PyTorch on the photos
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # where OpenVINO's CPU plugin has native bf16 for an int8 IR's float ops
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
             "amx_bf16", "asimddp", "i8mm")  # what int8 and fp32 kernels dispatch on


# ------------------------------------------------------------------------------------------ the machine


def cpu_facts() -> dict[str, Any]:
    """lscpu's model name, core count and flags (all, and the ones int8 kernels care about)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("Flags", "").split()
    if not flags and Path("/proc/cpuinfo").is_file():
        line = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
        flags = line.split(":", 1)[-1].split()
    return {"model": fields.get("Model name", platform.processor()), "cpus": os.cpu_count(),
            "hypervisor": fields.get("Hypervisor vendor", ""),
            "isa": {f: f in flags for f in ISA_FLAGS}, "vnni": any(f in flags for f in ("avx512_vnni", "avx_vnni")),
            "flags": " ".join(flags)}


# ------------------------------------------------------------------------------------------ artifacts


def naive_fp32(name: str, tmp: Path, checkpoint: Path, x: np.ndarray) -> Path:
    """The naive path: the official (train-form) structure exported by plain torch.onnx.export."""
    import torch

    from edgevit.models import build_reference

    model = build_reference(name, checkpoint=checkpoint).eval()
    path = tmp / f"{name}_naive_fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x),), str(path), input_names=["input"],
                          output_names=["logits"], dynamo=True, verbose=False)
    return path


def edgevit_artifacts(name: str, tmp: Path, checkpoint: Path, threads: int, runtimes: list[str]
                      ) -> tuple[dict[str, tuple[str, Path]], dict[str, Any], dict[str, str]]:
    """{variant: (runtime, path)} of the fp32 and int8 artifacts edgevit ships, each int8 selection, and
    {variant: why} for an export that failed (the other variants are still measured)."""
    from edgevit.errors import EdgeVitError
    from edgevit.export import export

    paths: dict[str, tuple[str, Path]] = {}
    selections: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for runtime in runtimes:
        target, suffix = RUNTIMES[runtime]
        for precision in ("fp32", "int8"):
            t0 = time.monotonic()
            print(f"[export] {name} {target} {precision}", flush=True)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    rep = export(name, target=target, precision=precision, checkpoint=checkpoint, verify=False,
                                 output=tmp / f"{name}_{precision}{suffix}", threads=threads, int8_force=True)
            except EdgeVitError as exc:
                failed[f"{runtime}/{precision}"] = f"{type(exc).__name__}: {exc}"[:400]
                print(f"[export] {name} {target} {precision} failed: {failed[f'{runtime}/{precision}']}", flush=True)
                continue
            paths[f"{runtime}/{precision}"] = (runtime, rep.artifact)
            summary = rep.record.export.get("int8_summary")
            if precision == "int8" and rep.record.int8_precision is not None:
                mp = rep.record.int8_precision
                selections[runtime] = {"outcome": mp.outcome, "forced_needed": mp.outcome in ("slower", "no node pays"),
                                       "int8_nodes": mp.int8_nodes, "float_nodes": len(mp.float_nodes),
                                       "float_kinds": _kinds(mp.float_nodes), "speed_at_export": mp.speed,
                                       "summary": mp.summary, "export_s": round(time.monotonic() - t0, 1)}
            elif precision == "int8" and summary:
                selections[runtime] = {"summary": summary, "export_s": round(time.monotonic() - t0, 1)}
    return paths, selections, failed


def _kinds(nodes: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in nodes:
        out[n.kind] = out.get(n.kind, 0) + 1
    return out


RUNNER_OPTIONS = {"onnxruntime": {"spinning": False}}  # ORT sessions must not spin idle threads between turns


def open_runners(paths: dict[str, tuple[str, Path]], threads: int, bf16: bool) -> dict[str, Any]:
    """One runner per variant; on a CPU with native bf16, OpenVINO int8 also with its float ops in bf16
    (`precision_hint=bf16`, a run option of the same artifact: variant `openvino/int8+bf16`)."""
    from edgevit.backends import open_runner

    runners = {k: open_runner(rt, p, threads=threads, **RUNNER_OPTIONS.get(rt, {})) for k, (rt, p) in paths.items()}
    if bf16 and "openvino/int8" in paths:
        runners["openvino/int8+bf16"] = open_runner("openvino", paths["openvino/int8"][1], threads=threads,
                                                    precision_hint="bf16")
    return runners


# ------------------------------------------------------------------------------------------ statistics


def spread(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {"median_ms": round(float(np.median(a)), 4), "q25_ms": round(float(np.percentile(a, 25)), 4),
            "q75_ms": round(float(np.percentile(a, 75)), 4), "min_ms": round(float(a.min()), 4), "runs": int(a.size)}


def paired_ratio(base: list[float], other: list[float]) -> dict[str, float]:
    """Median over rounds of base/other (> 1: other is faster) and its 95% interval."""
    from edgevit.quantize.verdict import median_interval

    ratios = [b / o for b, o in zip(base, other, strict=True)]
    lo, hi = median_interval(ratios)
    return {"median": round(float(np.median(ratios)), 4), "ci95": [round(lo, 4), round(hi, 4)],
            "q25": round(float(np.percentile(ratios, 25)), 4), "q75": round(float(np.percentile(ratios, 75)), 4)}


def fidelity(runner: Any, photos: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    out = np.concatenate([runner.infer(photos[i : i + 1]) for i in range(len(photos))])
    cos = cosine_rows(ref, out)
    return {"cosine_min": round(float(cos.min()), 6), "cosine_mean": round(float(cos.mean()), 6),
            "top1_agreement": round(float((ref.argmax(1) == out.argmax(1)).mean()), 4), "photos": len(photos)}


# ------------------------------------------------------------------------------------------ one model


def bench_model(name: str, *, threads: int, rounds: int, runtimes: list[str], naive: bool) -> dict[str, Any]:
    import torch

    from edgevit.models import build_reference, model_info
    from edgevit.quantize.data import embedded_eval_images

    cfg = model_info(name).default_cfg
    photos = embedded_eval_images(int(cfg["img_size"]), cfg["mean"], cfg["std"])
    with tempfile.TemporaryDirectory(prefix=f"int8-speed-{name}-") as d:
        tmp = Path(d)
        checkpoint, weights = save_fixture_checkpoint(name, tmp)
        with torch.no_grad():
            ref = build_reference(name, checkpoint=checkpoint).eval()(torch.from_numpy(photos)).numpy()
        paths, selections, failed = edgevit_artifacts(name, tmp, checkpoint, threads, runtimes)
        if naive:
            paths["naive/fp32"] = ("onnxruntime", naive_fp32(name, tmp, checkpoint, photos[:1]))
        runners = open_runners(paths, threads, bf16=any(cpu_facts()["isa"].get(f) for f in BF16_FLAGS))
        try:
            fid = {k: fidelity(r, photos, ref) for k, r in runners.items()}
            print(f"[time] {name}: {len(runners)} variants, {rounds} interleaved rounds", flush=True)
            load0 = os.getloadavg()
            samples = interleaved(runners, photos[:1], rounds)
            load1 = os.getloadavg()
            best = best_int8(samples, fid)
            defaults = (naive_at_defaults(paths["naive/fp32"][1], runners["naive/fp32"], runners[best], photos[:1],
                                          threads, rounds) if naive and best else None)
        finally:
            for r in runners.values():
                r.close()
    res: dict[str, Any] = {"weights": weights, "load_avg": [list(load0), list(load1)],
                           "variants": {k: {**spread(v), **fid[k]} for k, v in samples.items()},
                           "int8_vs_fp32": {}, "selection": selections, "failed": failed}
    for key in samples:
        rt, precision = key.split("/")
        if precision.startswith("int8") and f"{rt}/fp32" in samples:
            res["int8_vs_fp32"][key] = paired_ratio(samples[f"{rt}/fp32"], samples[key])
    if naive and best:
        res["best_int8_vs_naive_fp32"] = {"best": best, "meets_cosine": fid[best]["cosine_min"] >= GOAL_COSINE,
                                          **paired_ratio(samples["naive/fp32"], samples[best])}
        if defaults:
            res["best_int8_vs_naive_fp32_ort_defaults"] = defaults
    res["samples_ms"] = {k: [round(t, 4) for t in v] for k, v in samples.items()}
    return res


def best_int8(samples: dict[str, list[float]], fid: dict[str, dict[str, float]]) -> str | None:
    """The fastest int8 variant whose worst photo cosine reaches GOAL_COSINE (the fastest of all if none)."""
    int8 = [k for k in samples if k.split("/")[1].startswith("int8")]
    accurate = [k for k in int8 if fid[k]["cosine_min"] >= GOAL_COSINE]
    return min(accurate or int8, key=lambda k: float(np.median(samples[k]))) if int8 else None


def naive_at_defaults(naive: Path, no_spin: Any, best: Any, x: np.ndarray, threads: int, rounds: int
                      ) -> dict[str, Any]:
    """The naive path as a user gets it, ORT at its defaults (idle threads spinning, which the interleaved
    timing must turn off), against the best int8 runner: alternating blocks, ratios of block medians. The
    interleaved rounds' naive runner (spinning off) runs in the same blocks, so that what spinning changes
    is told apart from what timing in blocks changes."""
    from edgevit.backends import open_runner
    from edgevit.bench.paired import blockwise

    blocks = max(20, rounds // BLOCK_RUNS)
    print(f"[time] naive ORT fp32 at ORT's defaults vs the best int8 path: {blocks} alternating blocks", flush=True)
    runner = open_runner("onnxruntime", naive, threads=threads)
    try:
        load0 = os.getloadavg()
        med = blockwise({"naive": runner, "naive_no_spin": no_spin, "best": best}, x, blocks, runs=BLOCK_RUNS)
        load1 = os.getloadavg()
    finally:
        runner.close()
    return {"blocks": blocks, "runs_per_block": BLOCK_RUNS, "load_avg": [list(load0), list(load1)],
            "naive_ms": spread(med["naive"]), "naive_no_spin_ms": spread(med["naive_no_spin"]),
            "best_ms": spread(med["best"]), **paired_ratio(med["naive"], med["best"]),
            "no_spin": paired_ratio(med["naive_no_spin"], med["best"])}


# ------------------------------------------------------------------------------------------ report


def markdown(report: dict[str, Any]) -> str:
    env, cpu = report["env"], report["env"]["cpu"]
    isa = ", ".join(f for f, on in cpu["isa"].items() if on) or "none of " + ", ".join(ISA_FLAGS)
    lines = [f"# int8 vs fp32 on this host ({env['threads']} threads, batch 1, {env['rounds']} paired rounds)", "",
             f"CPU: {cpu['model']} ({cpu['cpus']} CPUs{', ' + cpu['hypervisor'] + ' guest' if cpu['hypervisor'] else ''}); "
             f"int8-relevant ISA flags: {isa}; VNNI: {'yes' if cpu['vnni'] else 'no'}. Load average at start "
             f"{env['load_avg_start']}, end {env['load_avg_end']}. Versions: "
             + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", "",
             "| model | runtime | fp32 ms (IQR) | int8 ms (IQR) | int8 speed vs fp32 (95% CI) | int8 cosine min | "
             "top-1 agree | float nodes | selection |", "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for name, res in report["results"].items():
        for key, r in res["int8_vs_fp32"].items():
            rt = key.split("/")[0]
            f32, i8 = res["variants"][f"{rt}/fp32"], res["variants"][key]
            sel = res["selection"].get(rt, {}) if key == f"{rt}/int8" else {}
            nodes = f"{sel['float_nodes']}/{sel['float_nodes'] + sel['int8_nodes']}" if "float_nodes" in sel else ""
            lines.append(
                f"| {name} | {key.removesuffix('/int8').replace('/int8', ' ')} | {f32['median_ms']:.2f} "
                f"({f32['q25_ms']:.2f}-{f32['q75_ms']:.2f}) | "
                f"{i8['median_ms']:.2f} ({i8['q25_ms']:.2f}-{i8['q75_ms']:.2f}) | {r['median']:.2f}x "
                f"({r['ci95'][0]:.2f}-{r['ci95'][1]:.2f}) | {i8['cosine_min']:.5f} | {i8['top1_agreement']:.2f} | "
                f"{nodes} | {sel.get('outcome', '')}{' (needed --int8-force)' if sel.get('forced_needed') else ''} |")
        for key, why in res.get("failed", {}).items():
            lines.append(f"| {name} | {key} | not exported: {why.replace('|', '/')[:160]} |||||||")
    naive = {n: r["best_int8_vs_naive_fp32"] for n, r in report["results"].items() if "best_int8_vs_naive_fp32" in r}
    if naive:
        lines += ["", f"Best int8 path: the fastest int8 variant with worst photo cosine >= {GOAL_COSINE}.", "",
                  "| model | best int8 path | naive ORT fp32 ms | best int8 ms | speed vs naive fp32 (95% CI) |",
                  "|---|---|---:|---:|---|"]
        for n, b in naive.items():
            v = report["results"][n]["variants"]
            lines.append(f"| {n} | {b['best']} | {v['naive/fp32']['median_ms']:.2f} | {v[b['best']]['median_ms']:.2f} | "
                         f"{b['median']:.2f}x ({b['ci95'][0]:.2f}-{b['ci95'][1]:.2f}) |")
            if d := report["results"][n].get("best_int8_vs_naive_fp32_ort_defaults"):
                for label, key, r in (("at ORT defaults (spinning)", "naive_ms", d),
                                      ("spinning off", "naive_no_spin_ms", d.get("no_spin"))):
                    if r:
                        lines.append(f"| {n} | {b['best']}, blocks of {d['runs_per_block']} x {d['blocks']}, naive "
                                     f"{label} | {d[key]['median_ms']:.2f} | {d['best_ms']['median_ms']:.2f} | "
                                     f"{r['median']:.2f}x ({r['ci95'][0]:.2f}-{r['ci95'][1]:.2f}) |")
    lines += ["", "Ratios are medians of per-round ratios (fp32 time / int8 time: > 1 means int8 is faster) from "
              "variants timed interleaved in one process; compare within one run, not across machines or loads. "
              "Cosine and top-1 are to PyTorch (the official code, the same conformance-fixture weights) on "
              "the scikit-image photos. int8 was exported with int8_force=True so that every model is measured: "
              "'needed --int8-force' marks where the export would have refused. The interleaved rounds run ORT "
              "with idle spinning off (else the session just timed steals the cores of the next); the "
              "'blocks' rows time the naive path as a user gets it, spinning on, and with spinning off, against "
              f"the best int8 path in alternating blocks of {BLOCK_RUNS} runs (after 3 untimed), the ratio taken "
              "per pair of block medians.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    ap.add_argument("--naive", nargs="*", default=["fcaformer_l1"],
                    help="models also timed on the naive path (official code, plain export, ORT fp32)")
    ap.add_argument("--out", type=Path, default=None,
                    help="write OUT.json (raw samples, environment) and OUT.md, e.g. benchmarks/results/int8_speed_host_t2")
    args = ap.parse_args()
    from edgevit.versions import package_versions

    env = {"threads": args.threads, "rounds": args.rounds, "cpu": cpu_facts(), "python": platform.python_version(),
           "versions": package_versions(("torch", "onnxruntime", "executorch", "openvino", "edgevit")),
           "load_avg_start": [round(v, 2) for v in os.getloadavg()],
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results: dict[str, Any] = {}
    out = args.out
    for name in args.models:  # the report is rewritten after every model: a later failure keeps the earlier ones
        results[name] = bench_model(name, threads=args.threads, rounds=args.rounds, runtimes=args.runtimes,
                                    naive=name in args.naive)
        env["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
        report = {"env": env, "results": results}
        write_report(report, markdown(report), out and out.with_name(out.name + ".json"),
                     out and out.with_name(out.name + ".md"))


if __name__ == "__main__":
    main()
