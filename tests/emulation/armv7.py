#!/usr/bin/env python3
"""Prove that edgevit's ncnn artifacts compute the same thing on armv7 (Cortex-A17 class) as on x86 (opt-in, slow).

What and why: the arm-a17 profile runs ncnn (PyPI has no armv7 wheels of onnxruntime or numpy, ncnn
has cp311 manylinux_2_31_armv7l wheels). No board is at hand, so this script exports the ncnn artifacts
with edgevit's pipeline (which verifies them against PyTorch on x86), runs each one on the same real
photos with x86 ncnn (here) and with the armv7l ncnn wheel from PyPI inside a Debian armhf rootfs
under `qemu-arm-static -cpu cortex-a15` (qemu has no A17 model; the A15 has the same ISA: ARMv7-A,
VFPv4, NEON, IDIV), and compares:

- fp32 (the runner turns fp16 storage off on both sides): max |armv7 - x86| and max |armv7 - PyTorch|
  within the conformance bound 1e-4 * max(1, max|ref|);
- fp16 (fp16 weights; ncnn's fp16 storage where the CPU has it, which armv7+VFPv4 does and x86 does
  not): per-image cosine(armv7, x86) >= 0.999 and top-1 agreement (reported).
- int8 (edgevit's ncnn int8: int8 Convolution/ConvolutionDepthWise/InnerProduct/Gemm, the rest fp32):
  per-image cosine(armv7, PyTorch) >= 0.995 and top-1 agreement with PyTorch >= 0.8 (verify's int8
  bar; the exact figure is reported), cosine(armv7, x86 ncnn int8) >= 0.999 (the two ISAs' int8
  kernels round differently), and the armv7 int8 logits differ from the armv7 fp32 ones (proof the
  int8 kernels ran; identical outputs would mean the int8 layers fell back to float).

Emulated runs are ~200x slower than a real CPU: the emulated wall time is printed only so a reader
knows what to expect; it is NOT a device timing and is never reported as one.

    python -m tests.emulation.armv7                       # fcaformer_l1 cas_vit_xs stvit_small
    python -m tests.emulation.armv7 --models cas_vit_xs --images 2 --json out/armv7.json

Needs: apt-get install mmdebstrap qemu-user-static; edgevit[ncnn]. The first run builds the armhf
rootfs (Debian bookworm python3 + python3-numpy) into ~/.cache/edgevit/emu/armhf with tests/emulation/harness.py
and unpacks the armv7l ncnn wheel (same version as the host's) beside it. Exit code 0 when every check
passed, 1 when one failed, 2 when tools are missing. Pytest wrapper:
`pytest -m emulation tests/test_armv7_emulation.py`.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tests.emulation.common import (
    COSINE_MIN,
    DEFAULT_MODELS,
    MEAN,
    REPO,
    STD,
    conformance_bound,
    cosine_rows,
    export_checkpoint,
    fixture_checkpoint,
    run_torch,
    write_report,
)

from edgevit.errors import UnavailableError
from tests.emulation import harness as emu

# Debian main only: the rootfs needs nothing from bookworm-security, and a security mirror caught
# mid-sync ("File has unexpected size") fails the whole build.
MIRROR = "deb http://deb.debian.org/debian bookworm main"
ARCH_LIB = "usr/lib/arm-linux-gnueabihf"


@dataclass
class Check:
    """One artifact's comparison, armv7 (emulated) against x86 ncnn and PyTorch."""

    model: str
    precision: str
    passed: bool
    images: int
    max_abs_err: float | None = None  # armv7 ncnn vs x86 ncnn
    bound: float | None = None  # fp32: 1e-4 * max(1, max|x86|)
    max_abs_err_vs_torch: float | None = None  # armv7 ncnn vs the PyTorch model
    bound_vs_torch: float | None = None
    cosine_min: float | None = None  # per-image cosine(armv7, x86), worst image
    cosine_min_vs_torch: float | None = None
    top1_agreement: float | None = None  # armv7 vs x86
    cosine_mean_vs_torch: float | None = None
    top1_agreement_vs_torch: float | None = None
    cosine_min_x86_vs_torch: float | None = None  # the x86 ncnn artifact on the same images
    cosine_mean_x86_vs_torch: float | None = None
    top1_x86_vs_torch: float | None = None
    int8_layers: int | None = None  # int8: layers the .param marks int8
    max_abs_diff_to_fp32: float | None = None  # int8: |armv7 int8 - armv7 fp32|, must not be 0
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- guest

def ncnn_wheel(cache: Path, version: str) -> Path:
    """The armv7l ncnn wheel of `version` from PyPI (host pip, binary only, no dependencies)."""
    wheels = cache / "wheels"
    found = sorted(wheels.glob(f"ncnn-{version}-cp311-cp311-*armv7l.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--platform", "manylinux_2_31_armv7l", "--python-version", "3.11", "--implementation", "cp",
           "-d", str(wheels), f"ncnn=={version}"]
    constraints = REPO / "constraints.txt"
    if constraints.is_file():
        cmd[4:4] = ["-c", str(constraints)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(f"ncnn-{version}-cp311-cp311-*armv7l.whl"))
    if proc.returncode != 0 or not found:
        raise UnavailableError(f"no armv7l ncnn {version} wheel for cp311 on PyPI: {proc.stderr.strip()[-300:]}")
    return found[0]


def ensure_armhf_guest(log: Any = print) -> emu.Guest:
    """Debian armhf rootfs with python3 + python3-numpy, and the armv7l ncnn wheel unpacked beside it.

    The ncnn wheel's declared dependencies (numpy, requests, tqdm, portalocker) have no armv7 wheels on
    PyPI and are not needed to run a model: the wheel is unpacked with --no-deps semantics, and numpy
    comes from Debian.
    """
    emu.require_tools(emu.ARMHF)
    rootfs = emu.build_rootfs(emu.ARMHF, debian_packages=["python3-numpy"], mirror=MIRROR)
    emu.write_cpuinfo(rootfs, emu.ARMHF)
    # --variant=extract runs no maintainer scripts, so update-alternatives never created the
    # libblas.so.3 / liblapack.so.3 links numpy's extension loads: create them as the postinst would.
    for lib, sub in (("libblas.so.3", "blas"), ("liblapack.so.3", "lapack")):
        link = rootfs / ARCH_LIB / lib
        if not link.exists() and (rootfs / ARCH_LIB / sub / lib).exists():
            link.symlink_to(f"{sub}/{lib}")
    version = metadata.version("ncnn")
    site = rootfs / "opt" / "edgevit-site" / f"ncnn-{version}"
    if not (site / "ncnn" / "__init__.py").is_file():
        wheel = ncnn_wheel(emu.cache_root(), version)
        log(f"[armv7] unpacking {wheel.name}")
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(site)
    # a host path: qemu's -L prefix serves it from inside the rootfs (guest-absolute /opt/... was not
    # found by the guest's import system under qemu-arm)
    return emu.Guest(arch=emu.ARMHF, rootfs=rootfs, pythonpath=[str(site)])


# Runs on the guest (and on the host, for the x86 side): numpy + ncnn only, one extractor per image.
_NCNN_SCRIPT = textwrap.dedent(
    """
    import json, platform, sys, time
    import numpy as np
    import ncnn

    spec = json.load(open(sys.argv[1]))
    x = np.load(spec["inputs"]).astype(np.float32)
    info = {"machine": platform.machine(), "ncnn": ncnn.__version__, "numpy": np.__version__,
            "neon": bool(ncnn.cpu_support_arm_neon()), "vfpv4": bool(ncnn.cpu_support_arm_vfpv4())}
    walls = {}
    for key, art in spec["models"].items():
        m = json.load(open(art["dir"] + "/model.json"))
        net = ncnn.Net()
        net.opt.num_threads = spec["threads"]
        if m["precision"] in ("fp32", "int8"):  # the edgevit runner's settings: no fp16/bf16 anywhere
            net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
            net.opt.use_bf16_storage = False
        net.opt.use_int8_inference = True  # int8 layers run their int8 kernels (as the edgevit runner sets)
        assert net.load_param(art["dir"] + "/model.param") == 0, key
        assert net.load_model(art["dir"] + "/model.bin") == 0, key
        rows = []
        t0 = time.time()
        for i in range(len(x)):
            a = np.ascontiguousarray(x[i])
            ex = net.create_extractor()
            ex.input(m["inputs"][0], ncnn.Mat(a))
            ret, out = ex.extract(m["outputs"][0])
            assert ret == 0, (key, ret)
            rows.append(np.array(out, dtype=np.float32).copy())
        walls[key] = time.time() - t0
        np.save(spec["outdir"] + "/" + key + ".npy", np.stack(rows))
        print("done", key, flush=True)
    info["wall_s_not_a_device_timing"] = walls
    json.dump(info, open(spec["outdir"] + "/info.json", "w"))
    """
)


def run_ncnn(artifacts: dict[str, Path], x: np.ndarray, *, threads: int, guest: emu.Guest | None,
             timeout: float | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run each ncnn artifact on every row of x, on the host (guest None) or in the armhf guest."""
    with tempfile.TemporaryDirectory(prefix="edgevit-armv7-") as tmp:
        work = Path(tmp)
        np.save(work / "inputs.npy", np.ascontiguousarray(x, dtype=np.float32))
        (work / "run.py").write_text(_NCNN_SCRIPT)
        spec = {"inputs": str(work / "inputs.npy"), "outdir": str(work), "threads": threads,
                "models": {k: {"dir": str(Path(p).resolve())} for k, p in artifacts.items()}}
        (work / "spec.json").write_text(json.dumps(spec))
        if guest is None:
            subprocess.run([sys.executable, str(work / "run.py"), str(work / "spec.json")], check=True,
                           capture_output=True, text=True, timeout=timeout)
        else:
            guest.python([str(work / "run.py"), str(work / "spec.json")], timeout=timeout)
        outs = {k: np.load(work / f"{k}.npy") for k in artifacts}
        info = json.loads((work / "info.json").read_text())
    return outs, info


# ------------------------------------------------------------------------------------------ models


INT8_COSINE_VS_TORCH = 0.995  # issue 18's goal for ncnn int8 on armv7
INT8_COSINE_VS_X86 = 0.999
INT8_TOP1_VS_TORCH = 0.8  # edgevit verify's int8 bar


def compare(name: str, precision: str, arm: np.ndarray, x86: np.ndarray, ref: np.ndarray,
            arm_fp32: np.ndarray | None = None, int8_layers: int | None = None) -> Check:
    c = Check(name, precision, passed=False, images=len(arm))
    c.max_abs_err, c.bound = float(np.abs(arm - x86).max()), conformance_bound(x86)
    c.max_abs_err_vs_torch, c.bound_vs_torch = float(np.abs(arm - ref).max()), conformance_bound(ref)
    c.cosine_min = float(cosine_rows(arm, x86).min())
    c.cosine_min_vs_torch = float(cosine_rows(arm, ref).min())
    c.top1_agreement = float(np.mean(arm.argmax(-1) == x86.argmax(-1)))
    c.cosine_mean_vs_torch = float(cosine_rows(arm, ref).mean())
    c.top1_agreement_vs_torch = float(np.mean(arm.argmax(-1) == ref.argmax(-1)))
    x86_cos = cosine_rows(x86, ref)
    c.cosine_min_x86_vs_torch, c.cosine_mean_x86_vs_torch = float(x86_cos.min()), float(x86_cos.mean())
    c.top1_x86_vs_torch = float(np.mean(x86.argmax(-1) == ref.argmax(-1)))
    if precision == "int8":
        c.int8_layers = int8_layers
        ran_int8 = bool(int8_layers)
        if arm_fp32 is not None:
            c.max_abs_diff_to_fp32 = float(np.abs(arm - arm_fp32).max())
            ran_int8 = ran_int8 and c.max_abs_diff_to_fp32 > 0
        c.passed = (ran_int8 and c.cosine_min_vs_torch >= INT8_COSINE_VS_TORCH and c.cosine_min >= INT8_COSINE_VS_X86
                    and c.top1_agreement_vs_torch >= INT8_TOP1_VS_TORCH)
    elif precision == "fp32":
        c.passed = c.max_abs_err <= c.bound and c.max_abs_err_vs_torch <= c.bound_vs_torch
    else:
        c.passed = c.cosine_min >= COSINE_MIN
    return c


def run(models: list[str], *, images: int, workdir: Path, threads: int = 1, reuse: bool = False,
        precisions: tuple[str, ...] = ("fp32", "fp16", "int8"), log: Any = print) -> dict[str, Any]:
    """Export (verified on x86), run in x86 ncnn and armv7 ncnn, compare; returns the report dict."""

    from edgevit.export import export
    from edgevit.quantize.data import embedded_eval_images

    guest = ensure_armhf_guest(log)
    machine = guest.python(["-c", "import platform; print(platform.machine())"], timeout=600).stdout.strip()
    if machine != "armv7l":
        raise RuntimeError(f"guest reports machine {machine!r}, expected armv7l")
    x = embedded_eval_images(224, MEAN, STD)[:images]
    workdir.mkdir(parents=True, exist_ok=True)
    arts: dict[str, Path] = {}
    weights: dict[str, str] = {}
    refs: dict[str, np.ndarray] = {}
    x86_verify: dict[str, Any] = {}
    for name in models:
        state, weights[name], is_fixture = fixture_checkpoint(name)
        ckpt = export_checkpoint(name, state, is_fixture, workdir, reuse)
        refs[name] = run_torch(name, state, x)
        for precision in precisions:
            out = workdir / f"{name}-{precision}.ncnn"
            if not (reuse and (out / "model.param").is_file()):
                log(f"[x86] export {name} {precision} (pnnx -> ncnn, verified against PyTorch)")
                rep = export(name, target="ncnn", precision=precision, output=out, checkpoint=ckpt)
                v = rep.verification
                x86_verify[f"{name}-{precision}"] = None if v is None else {
                    "passed": v.passed, "max_abs_error": v.outputs[0].max_abs_error if v.outputs else None,
                    "cosine_min": v.outputs[0].cosine_min if v.outputs else None}
            arts[f"{name}-{precision}"] = out

    log(f"[x86] ncnn on {len(x)} images x {len(arts)} artifacts")
    x86, host_info = run_ncnn(arts, x, threads=threads, guest=None)
    log(f"[armv7] ncnn under qemu-arm-static -cpu cortex-a15 on {len(x)} images x {len(arts)} artifacts (slow)")
    t0 = time.monotonic()
    arm, guest_info = run_ncnn(arts, x, threads=threads, guest=guest, timeout=7200)
    log(f"[armv7] done (emulated wall time {time.monotonic() - t0:.0f} s: NOT a device timing)")
    from edgevit.backends.ncnn.param import inspect_ncnn

    checks = [compare(name, p, arm[f"{name}-{p}"], x86[f"{name}-{p}"], refs[name], arm.get(f"{name}-fp32"),
                      inspect_ncnn(arts[f"{name}-{p}"])["int8_layers"] if p == "int8" else None)
              for name in models for p in precisions]
    guest_info.pop("wall_s_not_a_device_timing", None)
    host_info.pop("wall_s_not_a_device_timing", None)
    return {
        "passed": all(c.passed for c in checks),
        "checks": [asdict(c) for c in checks],
        "weights": weights,
        "x86_pipeline_verification": x86_verify,
        "images": int(len(x)),
        "suite": "bookworm",
        "qemu": f"{emu.ARMHF.qemu} -cpu {emu.ARMHF.qemu_cpu}",
        "guest": guest_info,
        "host": {**host_info, "machine": platform.machine()},
        "criteria": {
            "fp32": "max|armv7 - x86 ncnn| <= 1e-4*max(1, max|x86|) and the same bound vs the PyTorch model",
            "fp16": f"per-image cosine(armv7, x86 ncnn) >= {COSINE_MIN}; top-1 agreement reported",
            "int8": f"per-image cosine(armv7, PyTorch) >= {INT8_COSINE_VS_TORCH}, top-1 agreement with PyTorch >= "
                    f"{INT8_TOP1_VS_TORCH}, cosine(armv7, x86 ncnn) >= {INT8_COSINE_VS_X86}, int8 layers in the "
                    ".param and armv7 int8 logits != armv7 fp32 logits",
        },
        "timings": "none: emulated runs say nothing about device latency",
    }


def markdown(report: dict[str, Any]) -> str:
    g, h = report["guest"], report["host"]
    lines = [
        "# armv7 (Cortex-A17 class) vs x86 ncnn (armv7 under qemu user-mode emulation)",
        "",
        f"Guest: {g['machine']} ({report['qemu']}, Debian {report['suite']} armhf python3-numpy {g['numpy']}), "
        f"ncnn {g['ncnn']} (PyPI armv7l wheel), NEON {g['neon']}, VFPv4 {g['vfpv4']}. Host: {h['machine']}, ncnn "
        f"{h['ncnn']}. Inputs: {report['images']} real photos (scikit-image), 224x224, batch 1.",
        "No timings: emulation is ~200x slower than a real CPU and says nothing about a board's speed.",
        "",
        "| model | precision | weights | result | max abs err armv7 vs x86 | bound | max abs err vs PyTorch | "
        "bound | cosine min vs x86 | cosine min vs PyTorch | cosine mean vs PyTorch | top-1 vs x86 | "
        "top-1 vs PyTorch | x86 cosine min / mean vs PyTorch | x86 top-1 vs PyTorch | int8 layers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: float | None, fmt: str = ".3g") -> str:
        return "" if v is None else format(v, fmt)

    for c in report["checks"]:
        lines.append(
            f"| {c['model']} | {c['precision']} | {report['weights'].get(c['model'], '')} | "
            f"{'pass' if c['passed'] else 'FAIL'} | {f(c['max_abs_err'])} | {f(c['bound'])} | "
            f"{f(c['max_abs_err_vs_torch'])} | {f(c['bound_vs_torch'])} | {f(c['cosine_min'], '.7f')} | "
            f"{f(c['cosine_min_vs_torch'], '.7f')} | {f(c.get('cosine_mean_vs_torch'), '.7f')} | "
            f"{f(c['top1_agreement'], '.0%')} | {f(c.get('top1_agreement_vs_torch'), '.0%')} | "
            f"{f(c.get('cosine_min_x86_vs_torch'), '.5f')} / {f(c.get('cosine_mean_x86_vs_torch'), '.5f')} | "
            f"{f(c.get('top1_x86_vs_torch'), '.0%')} | {c.get('int8_layers') or ''} |"
        )
    lines += ["", f"Overall: {'PASS' if report['passed'] else 'FAIL'}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--images", type=int, default=4, help="real photos to run (max 14)")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"], choices=["fp32", "fp16", "int8"])
    ap.add_argument("--workdir", type=Path, default=emu.cache_root() / "armhf" / "artifacts",
                    help="where artifacts are exported (outside the repository)")
    ap.add_argument("--reuse", action="store_true", help="reuse artifacts already in --workdir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the report as JSON")
    ap.add_argument("--markdown", type=Path, help="write the report as Markdown")
    args = ap.parse_args(argv)
    try:
        report = run(args.models, images=args.images, workdir=args.workdir, threads=args.threads,
                     reuse=args.reuse, precisions=tuple(args.precisions))
    except UnavailableError as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 2
    write_report(report, markdown(report), args.json, args.markdown)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
