"""Can instruction counts gate latency here? `perf stat -e instructions`, else valgrind's cachegrind.

    python benchmarks/instruction_counts.py                     # 3 repeats x k in (0, 1, 2) x 3 variants (~25 min)
    python benchmarks/instruction_counts.py --repeats 1 --ks 0,1 --variants base   # smoke (~1-2 min)

A deterministic mode would count the instructions of a few inferences per case instead of timing them:
no load dependence if the count is reproducible. For each variant (cas_vit_xs fp32 ONNX, and the same
with identity 1x1 convs in front costing about +10% and +20% on this host, `synthetic.with_extra_work`)
and k inferences, one python process loads the model in ONNX Runtime (1 thread, no spinning, sequential,
fixed input, PYTHONHASHSEED=0, ASLR off with `setarch -R` where it exists) and runs k inferences under
the counter. An inference's count is count(k) - count(0); a mode is usable when repeats of the same
variant agree far better than the variants differ.

Writes benchmarks/results/instruction_counts.{json,md} with the machine, the counter used and `uptime`.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
BLOCKS = {"base": 0, "+10%": 5, "+20%": 10}  # identity 1x1 convs (sized on this host by gate_power.py's method)
RUN = """
import sys
import numpy as np
import onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.add_session_config_entry("session.intra_op.allow_spinning", "0")
sess = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
for _ in range(int(sys.argv[2])):
    sess.run(None, {name: x})
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def perf_counts() -> str:
    """What `perf stat -e instructions` says here ('<not supported>' in a VM without a PMU)."""
    if shutil.which("perf") is None:
        return "perf not installed"
    done = subprocess.run(["perf", "stat", "-x", ",", "-e", "instructions", "true"], capture_output=True, text=True,
                          check=False)
    return (done.stderr.strip().splitlines() or ["no output"])[-1]


def count(model: Path, k: int, tmp: Path) -> tuple[int, float]:
    """Instructions of one python process that loads `model` and runs k inferences, and its wall time."""
    out = tmp / f"cg.{os.getpid()}.{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}",
           sys.executable, "-c", RUN, str(model), str(k)]
    if shutil.which("setarch"):
        cmd = ["setarch", os.uname().machine, "-R", *cmd]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - t0
    m = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or m is None:
        raise SystemExit(f"valgrind failed ({done.returncode}): {done.stderr.strip().splitlines()[-3:]}")
    out.unlink(missing_ok=True)
    return int(m.group(1).replace(",", "")), wall


def main() -> None:
    from edgevit.bench.synthetic import with_extra_work
    from edgevit.cache import get_artifact
    from edgevit.files import atomic_write_json, atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cas_vit_xs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ks", default="0,1,2", help="inference counts per process")
    ap.add_argument("--variants", default=",".join(BLOCKS))
    ap.add_argument("--from-json", type=Path, default=None, help="rewrite the Markdown of a recorded study")
    args = ap.parse_args()
    if args.from_json:
        import json

        atomic_write_text(RESULTS / "instruction_counts.md", markdown(json.loads(args.from_json.read_text())))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    ks = [int(k) for k in args.ks.split(",")]
    data = {"model": args.model, "perf": perf_counts(), "uptime_start": uptime(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False).stdout.strip(),
            "runs": []}
    src = get_artifact(args.model, target="onnx", precision="fp32", img_size=None, batch=1).path
    with tempfile.TemporaryDirectory(prefix="icount-") as tmp_s:
        tmp = Path(tmp_s)
        for rep in range(args.repeats):
            for var in args.variants.split(","):
                path = with_extra_work(src, tmp / var.strip("+%") / "model.onnx", BLOCKS[var])
                for k in ks:
                    n, wall = count(path, k, tmp)
                    data["runs"].append({"variant": var, "k": k, "repeat": rep, "instructions": n,
                                         "wall_s": round(wall, 1), "load1": round(os.getloadavg()[0], 2)})
                    print(f"{var} k={k} rep={rep}: {n / 1e6:.1f} M instructions, {wall:.0f} s", file=sys.stderr,
                          flush=True)
    data["uptime_end"] = uptime()
    atomic_write_json(RESULTS / "instruction_counts.json", data, indent=1)
    atomic_write_text(RESULTS / "instruction_counts.md", markdown(data))
    print(markdown(data))


def markdown(d: dict) -> str:
    lines = [f"## Instruction counts per inference: {d['model']} fp32, ORT 1 thread, under cachegrind", "",
             f"- `perf stat -e instructions`: {d['perf']}", f"- {d['valgrind']}; started {d['started']}",
             f"- `uptime` at the start: {d['uptime_start']}; at the end: {d['uptime_end']}", "",
             "| variant | k | instructions (M) per repeat | spread | wall s |", "|---|---:|---|---:|---:|"]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in d["runs"]:
        groups.setdefault((r["variant"], r["k"]), []).append(r)
    for (var, k), rs in groups.items():
        ns = [r["instructions"] / 1e6 for r in rs]
        spread = f"{(max(ns) - min(ns)) / min(ns):.2%}" if len(ns) > 1 else "—"
        lines.append(f"| {var} | {k} | {', '.join(f'{n:.1f}' for n in ns)} | {spread} | "
                     f"{', '.join(str(r['wall_s']) for r in rs)} |")
    lines += ["", "| variant | per inference, count(k) - count(0) (M) | vs base | repeats agree within |",
              "|---|---:|---:|---:|"]
    per = per_inference(d["runs"])
    base = per.get("base", (None, None))[0]
    for var, (mean, spread) in per.items():
        vs = f"{mean / base - 1:+.2%}" if base else "—"
        lines.append(f"| {var} | {mean / 1e6:.2f} | {vs} | {spread:,.0f} instructions |")
    return "\n".join(lines) + "\n"


def per_inference(runs: list[dict]) -> dict[str, tuple[float, float]]:
    """variant -> (mean instructions of one inference, max - min over repeats), from the k=0 and k=max runs."""
    out = {}
    for var in dict.fromkeys(r["variant"] for r in runs):
        ks = sorted({r["k"] for r in runs if r["variant"] == var})
        if len(ks) < 2 or ks[0] != 0:
            continue
        by = {(r["repeat"], r["k"]): r["instructions"] for r in runs if r["variant"] == var}
        vals = [(by[(rep, ks[-1])] - by[(rep, 0)]) / ks[-1] for rep in {r for r, _ in by}
                if (rep, ks[-1]) in by and (rep, 0) in by]
        if vals:
            out[var] = (sum(vals) / len(vals), max(vals) - min(vals))
    return out


if __name__ == "__main__":
    main()
