"""How fast can int8 make a model on this host? The per-op ceiling of each runtime (a script, not a test).

Issue 18 asks the best int8 path for fcaformer_l1 to reach 2.5x the naive ORT fp32 path on a VNNI CPU,
and, where a goal is missed, the per-op ceiling analysis for each runtime tried. For one model (the
conformance fixture's weights) this profiles, per node and interleaved, the naive ORT fp32 export and
edgevit's fp32 and int8 artifacts in ONNX Runtime (`enable_profiling`) and OpenVINO (per-node
counters; int8 with its float ops in f32 and, on a bf16 CPU, in bf16), and sums the node times by op
class: the matrix ops int8 can take (conv, gemm, matmul; their int8 kernels included), standalone Q/DQ,
OpenVINO's fused elementwise subgraphs, normalisation, softmax, elementwise and activations, layout
(transpose, reshape, reorder, concat), pooling, other.

The ceiling of a runtime, from its fp32 profile: with T = A + R (A: matrix-op time, R: the rest),
int8 at VNNI's peak (4x the fp32 multiply-accumulate rate per instruction: 64 int8 MACs per 512-bit
vpdpbusd vs 16 fp32 FMAs) and free Q/DQ gives A/4 + R; with the matrix ops free, R. The ratios of the
naive time to these bound what any int8 of that runtime can reach while the rest stays as it is.

    python benchmarks/int8_ceiling.py fcaformer_l1 --threads 2 --rounds 50 --out benchmarks/results/int8_ceiling_fcaformer_l1_t2
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from _common import save_fixture_checkpoint, write_report
from int8_speed import BF16_FLAGS, cpu_facts, naive_fp32

VNNI_PEAK = 4.0  # int8 MACs per fp32 FMA, per AVX-512 instruction
CLASSES = (  # op class <- node type (ORT op type or OpenVINO layer type), first match wins
    # whole names: OpenVINO's int8 FC is "FullyConnectedQuantizedLegacy", ORT's int8 conv "QLinearConv"
    ("Q/DQ", re.compile(r"^(FakeQuantize|QuantizeLinear|DequantizeLinear|DynamicQuantizeLinear)$")),
    ("matrix (conv/gemm/matmul)", re.compile(r"Conv|Gemm|MatMul|FullyConnected|Convolution|Attention", re.I)),
    # OpenVINO snippets: fused activations, smooth-quant scales and activation quantizers
    ("fused elementwise (OV Subgraph)", re.compile(r"^Subgraph$")),
    ("normalisation", re.compile(r"Norm|MVN", re.I)),
    ("softmax", re.compile(r"Softmax", re.I)),
    ("layout", re.compile(r"Transpose|Reshape|Reorder|Concat|Split|Slice|Gather|Squeeze|Unsqueeze|Flatten|Pad|"
                          r"Permute|Copy|Expand|Tile|ShapeOf", re.I)),
    ("elementwise/activation", re.compile(r"Add|Mul|Sub|Div|Gelu|Erf|Sigmoid|Relu|Tanh|Eltwise|Swish|Pow|Sqrt|"
                                          r"Clip|HSwish|Exp|Multiply|Subtract|Divide|Power", re.I)),
    ("pooling", re.compile(r"Pool|ReduceMean|Reduce", re.I)),
)


def op_class(node_type: str) -> str:
    return next((name for name, pattern in CLASSES if pattern.search(node_type)), "other")


def by_class(times: dict[str, float], types: dict[str, str]) -> dict[str, float]:
    """Sum of node times (ms) per op class."""
    out: dict[str, float] = defaultdict(float)
    for node, ms in times.items():
        out[op_class(types.get(node, node))] += ms
    return dict(out)


def ort_profiles(paths: dict[str, Path], x: np.ndarray, threads: int, rounds: int) -> dict[str, dict[str, float]]:
    """ORT: per-class ms of each model, profiled interleaved (edgevit's profiler, `backends/onnx/costs.py`)."""
    from edgevit.backends.onnx.costs import profile_models

    profiles = profile_models(list(paths.values()), x, threads, runs=rounds)
    return {k: by_class(p.ms, {n.name: n.op_type for n in p.nodes}) for k, p in zip(paths, profiles)}


def ov_profiles(paths: dict[str, tuple[Path, dict[str, Any]]], x: np.ndarray, threads: int,
                rounds: int) -> dict[str, dict[str, float]]:
    """OpenVINO: per-class ms of each (artifact, runner options), from the plugin's per-node counters."""
    from edgevit.backends import open_runner

    runners = {k: open_runner("openvino", p, threads=threads, perf_count=True, **o) for k, (p, o) in paths.items()}
    try:
        for r in runners.values():
            r.infer(x)
        types = {k: {p.node_name: p.node_type for p in r.profiling_info()} for k, r in runners.items()}
        samples: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in runners}
        keys = list(runners)
        for i in range(rounds + 5):
            for k in keys[i % len(keys):] + keys[: i % len(keys)]:
                runners[k].infer(x)
                if i >= 5:
                    for p in runners[k].profiling_info():
                        if "EXECUTED" in str(p.status) and "NOT_RUN" not in str(p.status):
                            samples[k][p.node_name].append(p.real_time.total_seconds() * 1e3)
        return {k: by_class({n: statistics.median(v) for n, v in samples[k].items()}, types[k]) for k in runners}
    finally:
        for r in runners.values():
            r.close()


def ceiling(naive_ms: float, fp32: dict[str, float]) -> dict[str, float]:
    """The bounds of int8 from one fp32 profile (see the module docstring)."""
    matrix = fp32.get("matrix (conv/gemm/matmul)", 0.0)
    rest = sum(fp32.values()) - matrix
    return {"fp32_ms": round(matrix + rest, 3), "matrix_ms": round(matrix, 3), "rest_ms": round(rest, 3),
            "vnni_peak_ms": round(matrix / VNNI_PEAK + rest, 3),
            "vnni_peak_vs_naive": round(naive_ms / (matrix / VNNI_PEAK + rest), 2),
            "matrix_free_vs_naive": round(naive_ms / rest, 2) if rest > 0 else float("inf")}


def export_artifacts(name: str, tmp: Path, checkpoint: Path, threads: int) -> dict[str, Path]:
    from edgevit.export import export

    out = {}
    for target, precision, suffix in (("onnx", "fp32", ".onnx"), ("onnx", "int8", ".onnx"),
                                      ("openvino", "fp32", ".openvino"), ("openvino", "int8", ".openvino")):
        print(f"[export] {name} {target} {precision}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = export(name, target=target, precision=precision, output=tmp / f"{precision}{suffix}",
                         checkpoint=checkpoint, verify=False, threads=threads, int8_force=True)
        out[f"{target}/{precision}"] = rep.artifact
    return out


def study(name: str, threads: int, rounds: int) -> dict[str, Any]:
    from edgevit.models import model_info
    from edgevit.quantize.data import embedded_eval_images

    cfg = model_info(name).default_cfg
    x = embedded_eval_images(int(cfg["img_size"]), cfg["mean"], cfg["std"])[:1]
    bf16 = any(cpu_facts()["isa"].get(f) for f in BF16_FLAGS)
    with tempfile.TemporaryDirectory(prefix=f"int8-ceiling-{name}-") as d:
        tmp = Path(d)
        checkpoint, weights = save_fixture_checkpoint(name, tmp)
        art = export_artifacts(name, tmp, checkpoint, threads)
        naive = naive_fp32(name, tmp, checkpoint, x)
        print(f"[profile] {name}: ONNX Runtime and OpenVINO, {rounds} interleaved rounds", flush=True)
        ort = ort_profiles({"naive fp32": naive, "edgevit fp32": art["onnx/fp32"], "edgevit int8": art["onnx/int8"]},
                           x, threads, rounds)
        ov_paths = {"fp32": (art["openvino/fp32"], {}), "int8": (art["openvino/int8"], {})}
        if bf16:
            ov_paths["int8+bf16"] = (art["openvino/int8"], {"precision_hint": "bf16"})
            ov_paths["fp32 as bf16"] = (art["openvino/fp32"], {"precision_hint": "bf16"})
        ov = ov_profiles(ov_paths, x, threads, rounds)
    naive_ms = sum(ort["naive fp32"].values())
    runtimes = {"onnxruntime": {"profiles": ort, "ceiling": ceiling(naive_ms, ort["edgevit fp32"]),
                                "int8_vs_naive": round(naive_ms / sum(ort["edgevit int8"].values()), 2)},
                "openvino": {"profiles": ov, "ceiling": ceiling(naive_ms, ov["fp32"]),
                             **{f"{k}_vs_naive": round(naive_ms / sum(v.values()), 2) for k, v in ov.items()}}}
    if "fp32 as bf16" in ov:
        runtimes["openvino"]["ceiling_bf16_rest"] = ceiling(naive_ms, ov["fp32 as bf16"])
    return {"model": name, "weights": weights, "naive_ort_fp32_ms": round(naive_ms, 3), "runtimes": runtimes}


def markdown(report: dict[str, Any]) -> str:
    env, s = report["env"], report["study"]
    lines = [f"# int8 ceiling of {s['model']} on this host ({env['threads']} threads, {env['rounds']} profiled "
             "rounds)", "", f"CPU: {env['cpu']['model']}; ISA flags: "
             + ", ".join(f for f, on in env["cpu"]["isa"].items() if on) + f". Load average {env['load_avg']}. "
             f"Weights: {s['weights']}. Naive ORT fp32 (sum of its profiled node times): {s['naive_ort_fp32_ms']:.2f} ms.",
             "", "Node time by op class (ms, sum of per-node medians):", ""]
    for rt, r in s["runtimes"].items():
        cols = list(r["profiles"])
        classes = sorted({c for p in r["profiles"].values() for c in p})
        lines += [f"**{rt}**", "", "| op class | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        for c in classes:
            lines.append(f"| {c} | " + " | ".join(f"{r['profiles'][k].get(c, 0.0):.2f}" for k in cols) + " |")
        lines.append("| total | " + " | ".join(f"{sum(r['profiles'][k].values()):.2f}" for k in cols) + " |")
        lines.append("")
        for key in ("ceiling", "ceiling_bf16_rest"):
            if key in r:
                c = r[key]
                lines.append(f"- {key.replace('_', ' ')}: fp32 {c['fp32_ms']:.2f} ms = matrix {c['matrix_ms']:.2f} + rest "
                             f"{c['rest_ms']:.2f}; int8 at VNNI peak {c['vnni_peak_ms']:.2f} ms = "
                             f"{c['vnni_peak_vs_naive']:.2f}x naive; matrix ops free {c['matrix_free_vs_naive']:.2f}x naive")
        lines.append("- measured vs naive: " + ", ".join(f"{k.removesuffix('_vs_naive')} {v:.2f}x" for k, v in r.items()
                                                         if k.endswith("_vs_naive")))
        lines.append("")
    lines.append("Sums of per-node medians leave out the runtime's between-node overhead, so the totals are a "
                 "little below end-to-end latency; ratios compare like with like within this run.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="fcaformer_l1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args()
    env = {"threads": args.threads, "rounds": args.rounds, "cpu": cpu_facts(),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result = study(args.model, args.threads, args.rounds)
    env["load_avg"] = [round(v, 2) for v in os.getloadavg()]
    report = {"env": env, "study": result}
    out = args.out
    write_report(report, markdown(report), out and out.with_name(out.name + ".json"),
                 out and out.with_name(out.name + ".md"))


if __name__ == "__main__":
    main()
