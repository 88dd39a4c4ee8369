"""Run Python in a foreign-architecture Debian root filesystem under qemu user-mode emulation.

Why: edgevit's artifacts are meant for ARM boards, and no board or Docker engine is at hand where
edgevit is developed. This module builds (once, cached outside the repository) a minimal Debian
rootfs for arm64 or armhf with `mmdebstrap --variant=extract`, installs manylinux wheels into it with
`pip install --platform ... --target`, writes the fake ARM `/proc/cpuinfo` ONNX Runtime needs (it
segfaults parsing the host's x86 one), and runs the guest's own python3 with `qemu-<arch>-static -L
ROOTFS`. No binfmt_misc, chroot, proot or root privileges inside the guest are needed.

Emulated runs are ~200x slower than the native CPU and say nothing about a board's speed: use them
for *correctness* (same outputs on the target ISA), never report their timings as device timings.

Public API (the armv7 / ncnn work imports it too)::

    from tests.emulation import harness as emu
    emu.require_tools(emu.ARM64)                     # raises UnavailableError naming the apt packages
    guest = emu.ensure_guest(emu.ARM64, wheels=["onnxruntime==1.32.0", "numpy==2.4.6"])
    proc = guest.python(["/tmp/x/script.py", "arg"])  # CompletedProcess; paths are host paths
    res = emu.run_onnx(guest, {"m": Path("m.onnx")}, x)  # res.outputs["m"]: logits on the guest, res.info

    # armv7: numpy from Debian (PyPI has no armv7 numpy), ncnn's manylinux_2_31_armv7l wheel
    g7 = emu.ensure_guest(emu.ARMHF, debian_packages=["python3-numpy"], wheels=["ncnn==1.0.20261020"],
                          no_deps=True)

Paths handed to the guest are host paths: qemu's `-L` prefix serves a path from the rootfs when it
exists there and from the host otherwise, so use paths that do not exist inside the rootfs (anything
under /tmp/<new dir>, the repository, ~/.cache). Address files inside the rootfs by their host path
too (`guest.rootfs / "usr/..."`): qemu-arm 7.2 applies the prefix to open() but not to stat() of a
32-bit guest, so guest-absolute paths half-work on armhf.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgevit.errors import UnavailableError

# A Cortex-A76 (Raspberry Pi 5) as the Linux kernel prints it; ORT's cpuinfo reads "Features"/"CPU part".
_CPUINFO_A76 = """\
processor\t: {i}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1
"""

# A Cortex-A17 (RK3288) as the Linux kernel prints it.
_CPUINFO_A17 = """\
processor\t: {i}
model name\t: ARMv7 Processor rev 1 (v7l)
BogoMIPS\t: 48.00
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xc0d
CPU revision\t: 1
"""


@dataclass(frozen=True)
class GuestArch:
    """One emulated architecture: Debian arch, qemu binary and CPU model, pip platform tags, cpuinfo."""

    name: str  # cache directory name and label
    debian_arch: str  # mmdebstrap --arch
    qemu: str  # qemu user-mode binary on the host
    wheel_platforms: tuple[str, ...]  # pip --platform tags, most specific first
    cpuinfo_entry: str  # one processor block of /proc/cpuinfo, with {i}
    qemu_cpu: str | None = None  # qemu -cpu model (None: qemu's default, "max" for aarch64)
    cpus: int = 4
    hardware: str = ""  # trailing "Hardware" line of 32-bit ARM cpuinfo

    def cpuinfo(self) -> str:
        text = "\n".join(self.cpuinfo_entry.format(i=i) for i in range(self.cpus))
        return text + (f"\nHardware\t: {self.hardware}\n" if self.hardware else "")


ARM64 = GuestArch(
    name="arm64",
    debian_arch="arm64",
    qemu="qemu-aarch64-static",
    # bookworm has glibc 2.36; OpenVINO's aarch64 wheels are manylinux_2_35
    wheel_platforms=("manylinux_2_35_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64", "linux_aarch64"),
    cpuinfo_entry=_CPUINFO_A76,
    # The Raspberry Pi 5 core, matching the cpuinfo above: ORT picks its kernels from the hwcaps qemu
    # reports (dot product, no SVE/i8mm), as on the board; qemu's default "max" would add SVE/i8mm.
    # dataclasses.replace(ARM64, qemu_cpu="cortex-a72") checks the Pi 4's path (no dot product).
    qemu_cpu="cortex-a76",
)

ARMHF = GuestArch(
    name="armhf",
    debian_arch="armhf",
    qemu="qemu-arm-static",
    # PyPI has almost nothing for armv7 (no numpy, onnxruntime or torch; ncnn has manylinux_2_31_armv7l).
    wheel_platforms=(
        "manylinux_2_31_armv7l", "manylinux_2_17_armv7l", "manylinux2014_armv7l", "linux_armv7l",
    ),
    cpuinfo_entry=_CPUINFO_A17,
    qemu_cpu="cortex-a15",  # qemu has no A17 model; A15 has the same ISA (ARMv7-A, VFPv4, NEON, IDIV)
    hardware="Rockchip (Device Tree)",
)

BASE_PACKAGES = ("python3", "libstdc++6", "libgcc-s1", "libgomp1", "ca-certificates")
SITE = "/opt/edgevit-site"  # guest path of the pip --target directory (one per wheel set)


def cache_root() -> Path:
    """Where rootfs trees live: $EDGEVIT_EMU_CACHE or ~/.cache/edgevit/emu (never inside the repo)."""
    env = os.environ.get("EDGEVIT_EMU_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgevit" / "emu"


def missing_tools(arch: GuestArch) -> list[str]:
    """Host tools this arch needs that are not on PATH (mmdebstrap only matters for a new rootfs)."""
    return [tool for tool in ("mmdebstrap", arch.qemu) if shutil.which(tool) is None]


def require_tools(arch: GuestArch) -> None:
    """Raise UnavailableError naming the Debian packages to install if a tool is missing."""
    missing = missing_tools(arch)
    if missing:
        raise UnavailableError(
            f"{', '.join(missing)} not found: apt-get install mmdebstrap qemu-user-static "
            "(Debian/Ubuntu) to run artifacts under emulation"
        )


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _run(cmd: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a host command; on failure raise with its last output lines (mmdebstrap/pip are chatty)."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc


def build_rootfs(
    arch: GuestArch,
    *,
    debian_packages: Sequence[str] = (),
    suite: str = "bookworm",
    mirror: str | None = None,
    root: Path | None = None,
) -> Path:
    """Build (or reuse) an extracted Debian rootfs with python3 and the given packages; returns its path.

    `--variant=extract` only unpacks the .debs (no maintainer scripts, so no emulation is needed while
    building); a `.done` stamp holding the recipe makes reruns free and a changed recipe rebuild.
    """
    packages = sorted({*BASE_PACKAGES, *debian_packages})
    recipe = {"arch": arch.debian_arch, "suite": suite, "packages": packages, "mirror": mirror}
    base = (root or cache_root()) / arch.name
    rootfs = base / f"rootfs-{suite}-{_digest(recipe)}"
    stamp = rootfs.with_suffix(".done")
    if stamp.is_file() and (rootfs / "usr/bin/python3").exists():
        return rootfs
    if shutil.which("mmdebstrap") is None:
        require_tools(arch)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=rootfs.name + ".", dir=base))
    tmp.rmdir()  # mmdebstrap wants to create the directory itself
    cmd = [
        "mmdebstrap", "--variant=extract", f"--arch={arch.debian_arch}", f"--include={','.join(packages)}",
        suite, str(tmp),
    ]
    if mirror:
        cmd.append(mirror)
    try:
        try:
            _run(cmd)
        except RuntimeError:
            # A mirror mid-sync (seen: security.debian.org's armhf index) fails apt-get update; retry
            # once with the main archive alone. The guest only runs tests, security updates do not matter.
            if mirror:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            _run([*cmd, "http://deb.debian.org/debian"])
        if rootfs.exists():
            shutil.rmtree(rootfs)
        tmp.rename(rootfs)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    link_alternatives(rootfs)
    write_cpuinfo(rootfs, arch)
    stamp.write_text(json.dumps(recipe, indent=1) + "\n")
    return rootfs


def link_alternatives(rootfs: Path) -> list[Path]:
    """Create the BLAS/LAPACK links that update-alternatives would have made; returns the new links.

    `--variant=extract` runs no maintainer scripts, so Debian's python3-numpy fails to import with
    "libblas.so.3: cannot open shared object file" until /usr/lib/<triplet>/libblas.so.3 exists.
    """
    made: list[Path] = []
    for lib in sorted((rootfs / "usr" / "lib").glob("*-linux-gnu*/*/lib*.so.3")):
        if lib.parent.name not in ("blas", "lapack", "openblas-pthread"):
            continue
        link = lib.parent.parent / lib.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(Path(lib.parent.name) / lib.name)
            made.append(link)
    return made


def write_cpuinfo(rootfs: Path, arch: GuestArch) -> None:
    """Put a fake ARM /proc/cpuinfo in the rootfs; qemu's -L prefix then serves it to the guest.

    ONNX Runtime (pytorch/cpuinfo) parses /proc/cpuinfo at load; the host's x86 one makes it segfault.
    """
    proc = rootfs / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "cpuinfo").write_text(arch.cpuinfo())


def pip_install(
    rootfs: Path, arch: GuestArch, wheels: Sequence[str], *, python_version: str = "3.11",
    no_deps: bool = False,
) -> str:
    """Install binary wheels for the guest into ROOTFS/opt/edgevit-site/<hash>; returns the guest path.

    Runs the *host* pip with --platform/--target (only wheels: nothing is compiled). One directory per
    wheel set, so different pins coexist and a finished set is reused. `no_deps` for armhf, where a
    dependency such as numpy has no wheel and comes from a Debian package instead.
    """
    if not wheels:
        return ""
    spec = {"wheels": sorted(wheels), "platforms": arch.wheel_platforms, "python": python_version,
            "no_deps": no_deps}
    guest_dir = f"{SITE}/{_digest(spec)}"
    target = rootfs / guest_dir.lstrip("/")
    stamp = target / ".edgevit-done"
    if stamp.is_file():
        return guest_dir
    if target.exists():
        shutil.rmtree(target)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
           "--target", str(target), "--only-binary=:all:", "--python-version", python_version,
           "--implementation", "cp"]
    for plat in arch.wheel_platforms:
        cmd += ["--platform", plat]
    if no_deps:
        cmd.append("--no-deps")
    _run([*cmd, *wheels])
    stamp.write_text(json.dumps(spec, indent=1) + "\n")
    return guest_dir


@dataclass
class Guest:
    """A ready rootfs plus the qemu command line that runs its python3."""

    arch: GuestArch
    rootfs: Path
    pythonpath: list[str] = field(default_factory=list)  # host paths (see ensure_guest)
    python_bin: str = "/usr/bin/python3"

    def command(self, argv: Sequence[str]) -> list[str]:
        """The host command line that runs guest program argv[0] (a guest path) with argv[1:]."""
        cmd = [self.arch.qemu, "-L", str(self.rootfs)]
        if self.arch.qemu_cpu:
            cmd += ["-cpu", self.arch.qemu_cpu]
        program = argv[0]
        resolved = self.rootfs / program.lstrip("/")
        # qemu opens the executable itself without the prefix; follow symlinks inside the rootfs
        while resolved.is_symlink():
            link = os.readlink(resolved)
            resolved = (self.rootfs / link.lstrip("/")) if link.startswith("/") else resolved.parent / link
        return [*cmd, str(resolved), *argv[1:]]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment for the guest: the host's PYTHONPATH, venv or locale must not leak in."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
        }
        if self.pythonpath:
            env["PYTHONPATH"] = ":".join(self.pythonpath)
        env.update(extra or {})
        return env

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None,
        check: bool = True, cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a guest program; raises RuntimeError with the output tail if check and it fails."""
        proc = subprocess.run(self.command(argv), env=self.env(env), capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise RuntimeError(
                f"guest {self.arch.name} command failed ({proc.returncode}): {' '.join(argv)}\n{tail}"
            )
        return proc

    def python(self, args: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        """Run the guest's python3 with args (script paths are host paths outside the rootfs)."""
        return self.run([self.python_bin, *args], **kw)  # type: ignore[arg-type]

    def machine(self) -> str:
        """platform.machine() as the guest sees it (aarch64 / armv7l): proof the guest is ARM."""
        return self.python(["-c", "import platform; print(platform.machine())"]).stdout.strip()


def ensure_guest(
    arch: GuestArch,
    *,
    wheels: Sequence[str] = (),
    debian_packages: Sequence[str] = (),
    extra_pythonpath: Sequence[str] = (),
    suite: str = "bookworm",
    root: Path | None = None,
    no_deps: bool = False,
) -> Guest:
    """Build or reuse the rootfs, install `wheels` into it, refresh cpuinfo; return a runnable Guest."""
    if shutil.which(arch.qemu) is None:
        require_tools(arch)
    rootfs = build_rootfs(arch, debian_packages=debian_packages, suite=suite, root=root)
    link_alternatives(rootfs)  # cheap; also repairs rootfs trees built before this step existed
    write_cpuinfo(rootfs, arch)
    site = pip_install(rootfs, arch, wheels, no_deps=no_deps)
    # Host paths, not guest paths: qemu-arm 7.2 does not apply the -L prefix to stat() (statx) of a
    # 32-bit guest, so Python's import system cannot see /opt/... there, while host paths work everywhere.
    site_host = str(rootfs / site.lstrip("/")) if site else ""
    return Guest(arch=arch, rootfs=rootfs, pythonpath=[p for p in (site_host, *extra_pythonpath) if p])


# Runs on the guest: numpy + onnxruntime only. Every model on every input row, batch 1 each
# (artifacts are exported with a fixed batch of 1).
_ORT_GUEST_SCRIPT = textwrap.dedent(
    """
    import json, platform, sys
    import numpy as np
    import onnxruntime as ort

    spec = json.load(open(sys.argv[1]))
    x = np.load(spec["inputs"])
    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    info = {"machine": platform.machine(), "onnxruntime": ort.__version__, "numpy": np.__version__}
    for key, path in spec["models"].items():
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        outs = [sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))]
        np.save(spec["outdir"] + "/" + key + ".npy", np.concatenate(outs, axis=0))
        print("done", key, flush=True)
    json.dump(info, open(spec["outdir"] + "/info.json", "w"))
    """
)


@dataclass
class GuestOutputs:
    """Outputs computed on the guest, and what the guest reported about itself."""

    outputs: dict[str, np.ndarray]
    info: dict[str, str]  # machine, onnxruntime and numpy versions as seen on the guest


def run_onnx(
    guest: Guest, models: Mapping[str, Path], inputs: np.ndarray, *, threads: int = 1,
    timeout: float | None = None,
) -> GuestOutputs:
    """Run each ONNX model on every row of `inputs` (float32 NCHW) with the guest's ONNX Runtime."""
    with tempfile.TemporaryDirectory(prefix="edgevit-emu-") as tmp:
        work = Path(tmp)
        np.save(work / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
        (work / "run.py").write_text(_ORT_GUEST_SCRIPT)
        spec = {
            "inputs": str(work / "inputs.npy"),
            "models": {k: str(Path(p).resolve()) for k, p in models.items()},
            "outdir": str(work),
            "threads": threads,
        }
        (work / "spec.json").write_text(json.dumps(spec))
        guest.python([str(work / "run.py"), str(work / "spec.json")], timeout=timeout)
        outputs = {k: np.load(work / f"{k}.npy") for k in models}
        info = json.loads((work / "info.json").read_text())
    return GuestOutputs(outputs=outputs, info=info)


# Runs on the guest: numpy + openvino only. `configs` holds each model's CPU plugin properties (the
# host's `compile_config`), so the guest computes in the precision the host does: OpenVINO's default on
# ARMv8.2 cores (the A76 here) is f16, which an fp32 artifact must not get.
_OPENVINO_GUEST_SCRIPT = textwrap.dedent(
    """
    import json, platform, sys
    import numpy as np
    import openvino as ov

    def name(t):
        return t.get_type_name() if hasattr(t, "get_type_name") else str(t)

    spec = json.load(open(sys.argv[1]))
    x = np.load(spec["inputs"])
    core = ov.Core()
    info = {"machine": platform.machine(), "openvino": ov.__version__.split("-")[0], "numpy": np.__version__,
            "device": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "default_inference_precision": name(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))}
    precisions = {}
    for key, path in spec["models"].items():
        compiled = core.compile_model(core.read_model(path), "CPU", spec["configs"][key])
        precisions[key] = name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        req = compiled.create_infer_request()
        outs = []
        for i in range(len(x)):
            req.infer({0: x[i : i + 1]})
            outs.append(np.array(req.get_output_tensor(0).data, copy=True))
        np.save(spec["outdir"] + "/" + key + ".npy", np.concatenate(outs, axis=0))
        print("done", key, flush=True)
    info["inference_precision"] = precisions
    json.dump(info, open(spec["outdir"] + "/info.json", "w"))
    """
)


def run_openvino(
    guest: Guest, models: Mapping[str, Path], configs: Mapping[str, Mapping[str, object]], inputs: np.ndarray,
    *, timeout: float | None = None,
) -> GuestOutputs:
    """Run each OpenVINO IR (`.xml` with its `.bin`) on every row of `inputs` with the guest's OpenVINO,
    compiled with `configs[key]` (CPU plugin properties)."""
    with tempfile.TemporaryDirectory(prefix="edgevit-emu-") as tmp:
        work = Path(tmp)
        np.save(work / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
        (work / "run.py").write_text(_OPENVINO_GUEST_SCRIPT)
        spec = {
            "inputs": str(work / "inputs.npy"),
            "models": {k: str(Path(p).resolve()) for k, p in models.items()},
            "configs": {k: dict(v) for k, v in configs.items()},
            "outdir": str(work),
        }
        (work / "spec.json").write_text(json.dumps(spec))
        guest.python([str(work / "run.py"), str(work / "spec.json")], timeout=timeout)
        outputs = {k: np.load(work / f"{k}.npy") for k in models}
        info = json.loads((work / "info.json").read_text())
    return GuestOutputs(outputs=outputs, info=info)
