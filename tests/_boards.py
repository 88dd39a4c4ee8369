"""Emulated boards for the remote-bench tests: a board's "python3" that is the Debian arm64 or armhf
rootfs's own python3 under qemu-user (edgevit.emulation builds and caches the rootfs).

The wrapper runs on the SSH server's side like any python3 on a board: the board's shell stays
native, so `uname -m` there says x86_64 while python says aarch64/armv7l, which is how edgevit tells
an emulated board (and labels its results) from a real one.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from tests.emulation import harness as emu
from tests._sshd import python_wrapper

ARMHF_MIRROR = "deb http://deb.debian.org/debian bookworm main"  # as benchmarks/armv7_emulation.py builds it


def missing(arch: emu.GuestArch) -> str:
    tools = emu.missing_tools(arch)
    return f"{', '.join(tools)} missing: apt-get install mmdebstrap qemu-user-static" if tools else ""


def arm64_guest(*, runtime: bool = True) -> emu.Guest:
    """arm64 rootfs with this machine's numpy and onnxruntime wheels (aarch64 builds); without them
    when runtime=False (a board with a bare python3)."""
    wheels = [f"onnxruntime=={metadata.version('onnxruntime')}", f"numpy=={metadata.version('numpy')}"]
    guest = emu.ensure_guest(emu.ARM64, wheels=wheels)
    if not runtime:
        guest.pythonpath = []
    return guest


def armhf_guest(*, runtime: bool = True) -> emu.Guest:
    """armhf rootfs with Debian's python3-numpy and the armv7l ncnn wheel (PyPI has no armv7 ORT)."""
    rootfs = emu.build_rootfs(emu.ARMHF, debian_packages=["python3-numpy"], mirror=ARMHF_MIRROR)
    emu.link_alternatives(rootfs)
    emu.write_cpuinfo(rootfs, emu.ARMHF)
    site = emu.pip_install(rootfs, emu.ARMHF, [f"ncnn=={metadata.version('ncnn')}"], no_deps=True)
    return emu.Guest(arch=emu.ARMHF, rootfs=rootfs, pythonpath=[str(rootfs / site.lstrip("/"))] if runtime else [])


def board_python(guest: emu.Guest, path: Path) -> Path:
    """An executable `python3` for the SSH board that execs the guest's python3 under qemu."""
    env = {k: v for k, v in guest.env().items() if k in ("PYTHONPATH", "PYTHONNOUSERSITE", "LANG")}
    return python_wrapper(path, guest.command(["/usr/bin/python3"]), env)
