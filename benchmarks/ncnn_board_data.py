"""Build edgevit's board latency data from a local clone of Tencent/ncnn (figures only, with their source).

    python benchmarks/ncnn_board_data.py --ncnn-git /path/to/ncnn[.git] [--commit HEAD]

Reads, at the given commit, `benchmark/README.md` (benchncnn tables per board; parsed by
`edgevit.predict.benchncnn`), `git blame` of every row (the commit and date that published it, and
`git describe --tags` of that commit: the last ncnn release before it), the networks' input sizes from
`benchmark/benchncnn.cpp`, and `benchmark/models/*.param`, from which our own code computes the cost
features (`edgevit.predict.features`, blob shapes by ncnn with zero weights). It writes
`edgevit/predict/data/ncnn_benchmark.json`: the figures of the boards in BOARDS below and the
features; no ncnn file is copied. Then run `edgevit calibrate --refit` to refit the predictors.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgevit.predict.benchncnn import BenchRun, parse_benchncnn_readme
from edgevit.predict.features import ncnn_features
from edgevit.predict.ncnn_graph import parse_ncnn_param

README = "benchmark/README.md"
BENCH_CPP = "benchmark/benchncnn.cpp"
MODELS_DIRS = ("benchmark/models", "benchmark")  # the .param files moved into models/ in 2026
OUT = ROOT / "edgevit" / "predict" / "data" / "ncnn_benchmark.json"

# id -> (heading prefix as published, powersave filter or None, cpu, arch). The first matching section wins.
# The four boards of the device profiles first, then boards that validate the method (other cores, armv7,
# x86) and boards whose tables include the transformer (vision_transformer) used for cross-board transfer.
BOARDS: dict[str, tuple[str, int | None, str, str]] = {
    "rk3288": ("Rockchip RK3288-CG.W", None, "Cortex-A17", "armv7l"),
    "rpi4": ("Raspberry Pi 4 Model B", None, "Cortex-A72", "aarch64"),
    "rpi5": ("Raspberry Pi 5 Broadcom BCM2712, Cortex-A76", None, "Cortex-A76", "aarch64"),
    "orin-nano": ("NVIDIA Jetson Orin Nano", None, "Cortex-A78AE", "aarch64"),
    "hi3519": ("HiSilicon Hi3519V101", None, "Cortex-A17", "armv7l"),
    "banana-pi-m2-zero": ("Banana Pi M2 Zero 2", None, "Cortex-A7", "armv7l"),
    "imx7d": ("Freescale i.MX7 Dual", None, "Cortex-A7", "armv7l"),
    "rpi3": ("Raspberry Pi 3 Model B+", None, "Cortex-A53", "aarch64"),
    "rpi-zero2": ("Raspberry Pi Zero 2 W", None, "Cortex-A53", "aarch64"),
    "jetson-nano": ("NVIDIA Jetson Nano", None, "Cortex-A57", "aarch64"),
    "rk3399-a72": ("Rockchip RK3399 (Cortex-A72", 2, "Cortex-A72", "aarch64"),
    "rk3399-a53": ("Rockchip RK3399 (Cortex-A72", 1, "Cortex-A53", "aarch64"),
    "khadas-vim3": ("Khadas VIM3", 2, "Cortex-A73", "aarch64"),
    "kirin970": ("Kirin 970", 2, "Cortex-A73", "aarch64"),
    "snapdragon835": ("Qualcomm MSM8998", 2, "Kryo 280", "aarch64"),
    "rk3588-a76": ("Rockchip RK3588 (Cortex-A76", 2, "Cortex-A76", "aarch64"),
    "rk3588-a55": ("Rockchip RK3588 (Cortex-A76", 1, "Cortex-A55", "aarch64"),
    "rk3568": ("Station P2, Rockchip RK3568", None, "Cortex-A55", "aarch64"),
    "jetson-agx-orin": ("NVIDIA Jetson AGX Orin", None, "Cortex-A78AE", "aarch64"),
    "orangepi5-a76": ("OrangePi5, Rockchip RK3588s", 2, "Cortex-A76", "aarch64"),
    "orangepi4-a72": ("OrangePi4 LTS, Rockchip RK3399", 2, "Cortex-A72", "aarch64"),
    "snapdragon855p": ("Qualcomm SM8150-AC Snapdragon 855+", 2, "Kryo 485", "aarch64"),
    "snapdragon8g2": ("Qualcomm SM8550-AB Snapdragon 8 Gen 2", 2, "Kryo (Cortex-X3/A715)", "aarch64"),
    "dimensity9300": ("MediaTek Dimensity 9300", 2, "Cortex-X4/A720", "aarch64"),
    "radxa-zero3w": ("Radxa Zero 3W", None, "Cortex-A55", "aarch64"),
    "jetson-tx2nx": ("NVIDIA Jetson TX2 NX", None, "Denver2 + Cortex-A57", "aarch64"),
    "arduino-uno-q": ("Arduino UNO Q", None, "Cortex-A53", "aarch64"),
    "rdk-x3": ("RDK X3 Module", None, "Cortex-A53", "aarch64"),
    "celeron-n5105": ("Intel Celeron N5105", None, "Tremont", "x86_64"),
    "ryzen-5700g": ("AMD Ryzen 5700g", None, "Zen3", "x86_64"),
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def blame(repo: Path, commit: str, path: str) -> dict[int, str]:
    """Line number -> commit that last changed it."""
    out: dict[int, str] = {}
    for line in git(repo, "blame", "--porcelain", commit, "--", path).splitlines():
        m = re.match(r"^([0-9a-f]{40}) \d+ (\d+)", line)
        if m:
            out[int(m.group(2))] = m.group(1)
    return out


def commit_facts(repo: Path, sha: str, cache: dict[str, dict[str, str]]) -> dict[str, str]:
    if sha not in cache:
        date = git(repo, "log", "-1", "--format=%cs", sha).strip()
        try:
            describe = git(repo, "describe", "--tags", "--abbrev=0", sha).strip()
        except subprocess.CalledProcessError:
            describe = ""
        cache[sha] = {"commit": sha, "date": date, "ncnn_release_before": describe}
    return cache[sha]


def input_sizes(cpp: str) -> dict[str, list[int]]:
    """benchncnn's built-in input per network: benchmark("name", ncnn::Mat(w, h, c), ...) -> [c, h, w]."""
    out = {}
    for m in re.finditer(r'benchmark\("([^"]+)",\s*ncnn::Mat\((\d+),\s*(\d+),\s*(\d+)\)', cpp):
        w, h, c = int(m.group(2)), int(m.group(3)), int(m.group(4))
        out[m.group(1)] = [c, h, w]
    return out


def network_features(repo: Path, commit: str, names: set[str], sizes: dict[str, list[int]]) -> dict[str, dict]:
    files = set(git(repo, "ls-tree", "-r", "--name-only", commit, "benchmark/").split())
    out = {}
    for name in sorted(names):
        path = next((f"{d}/{name}.param" for d in MODELS_DIRS if f"{d}/{name}.param" in files), None)
        if path is None or name not in sizes:
            print(f"  skip {name}: no .param or no input size at {commit[:10]}", file=sys.stderr)
            continue
        text = git(repo, "show", f"{commit}:{path}")
        first_input = next(layer.tops[0] for layer in parse_ncnn_param(text) if layer.type == "Input")
        feats = ncnn_features(text, name, {first_input: tuple(sizes[name])})
        out[name] = {**feats.to_dict(), "path": path}
        print(f"  {name}: {feats.total_macs_m:.0f} MMACs, {feats.layers} layers", file=sys.stderr)
    return out


def board_runs(runs: list[BenchRun], heading: str, powersave: int | None) -> list[BenchRun]:
    sections = [r.board for r in runs if r.board.startswith(heading)]
    if not sections:
        return []
    first = sections[0]  # one section per id
    return [r for r in runs if r.board == first and (powersave is None or r.powersave == powersave)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ncnn-git", type=Path, required=True, help="ncnn git directory (bare or work tree)")
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    repo = args.ncnn_git
    commit = git(repo, "rev-parse", args.commit).strip()
    readme = git(repo, "show", f"{commit}:{README}")
    runs = parse_benchncnn_readme(readme)
    line_commit = blame(repo, commit, README)
    facts_cache: dict[str, dict[str, str]] = {}
    boards: dict[str, dict] = {}
    used: set[str] = set()
    for bid, (heading, ps, cpu, arch) in BOARDS.items():
        chosen = board_runs(runs, heading, ps)
        if not chosen:
            print(f"  no section for {bid} ({heading})", file=sys.stderr)
            continue
        out_runs = []
        for r in chosen:
            shas = {line_commit.get(x.line, "") for x in r.rows} - {""}
            # the run's provenance: the commit that published most of its rows
            sha = max(shas, key=lambda s: sum(line_commit.get(x.line) == s for x in r.rows))
            rows = []
            for x in r.rows:
                row_sha = line_commit.get(x.line, sha)
                row = {"network": x.network, "precision": x.precision, "min_ms": x.min_ms, "max_ms": x.max_ms,
                       "avg_ms": x.avg_ms, "line": x.line}
                if row_sha != sha:
                    row["published"] = commit_facts(repo, row_sha, facts_cache)
                rows.append(row)
                used.add(x.network + ("_int8" if x.precision == "int8" else ""))
            out_runs.append({"threads": r.threads, "powersave": r.powersave, "loop_count": r.loop_count,
                             "command": r.command, "line": r.line,
                             "published": commit_facts(repo, sha, facts_cache), "rows": rows})
        boards[bid] = {"heading": chosen[0].board, "cpu": cpu, "arch": arch, "runtime": "ncnn",
                       "powersave": ps, "runs": out_runs}
        print(f"{bid}: {len(out_runs)} runs, threads {[r['threads'] for r in out_runs]}", file=sys.stderr)
    sizes = input_sizes(git(repo, "show", f"{commit}:{BENCH_CPP}"))
    networks = network_features(repo, commit, used, sizes)
    data = {
        "schema": "edgevit.predict.ncnn_benchmark/1",
        "source": {
            "repository": "https://github.com/Tencent/ncnn", "commit": commit,
            "commit_date": git(repo, "log", "-1", "--format=%cs", commit).strip(),
            "readme": README, "models": MODELS_DIRS[0], "input_sizes": BENCH_CPP,
            "note": "latencies in ms as benchncnn printed them (min/max/avg over its loops); CPU runs only; "
                    "non-int8 rows ran with benchncnn's defaults (fp16 storage, and fp16 arithmetic where "
                    "the CPU has it); `published` = the commit that last changed the row (git blame) and "
                    "the last ncnn release tag before it",
        },
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "builder": "benchmarks/ncnn_board_data.py",
        "boards": boards,
        "networks": networks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)", file=sys.stderr)


if __name__ == "__main__":
    main()
