"""Opt-in: `edgevit bench --on` where the board is an emulated aarch64 (onnxruntime) and an emulated
armv7 (ncnn) python under qemu-user, behind the same real sshd as tests/test_remote.py.

The worker really executes on aarch64 / armv7l (the board facts say so, read there), the artifacts
are real edgevit exports (cas_vit_xs ONNX and ncnn), and every result says *emulated*: tables, the
combined fleet table (no numbers for emulated columns), `--strict` and `edgevit regress` refuse them
as device timings. Slow (Python and the runtimes under qemu), so deselected by default:

    pytest -m emulation tests/test_remote_emulation.py
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from tests.emulation import harness as emu
from edgevit.bench.protocol import Protocol
from edgevit.errors import ConfigError
from tests import _boards, _sshd
from tests._sshd import ALIAS, SshServer, processes_mentioning

pytestmark = [pytest.mark.emulation, pytest.mark.slow,
              pytest.mark.skipif(bool(_sshd.missing()), reason=_sshd.missing() or "sshd present")]

TINY = Protocol(warmup=1, warmup_seconds=0.0, runs=2)  # emulated timings mean nothing: prove it runs


def _need(arch: emu.GuestArch) -> None:
    if why := _boards.missing(arch):
        pytest.skip(why)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    s = SshServer(tmp_path_factory.mktemp("sshd")).start()
    yield s
    s.kill()


@pytest.fixture(scope="module")
def artifacts() -> dict[str, Path]:
    pytest.importorskip("pnnx")
    from edgevit.cache import get_artifact

    return {t: get_artifact("cas_vit_xs", target=t, precision="fp32").path for t in ("onnx", "ncnn")}


@pytest.fixture(scope="module")
def pythons(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _need(emu.ARM64)
    _need(emu.ARMHF)
    d = tmp_path_factory.mktemp("pythons")
    return {"arm64": _boards.board_python(_boards.arm64_guest(), d / "python3-arm64"),
            "armhf": _boards.board_python(_boards.armhf_guest(), d / "python3-armhf"),
            "armhf-bare": _boards.board_python(_boards.armhf_guest(runtime=False), d / "python3-armhf-bare")}


@pytest.fixture(scope="module")
def fleet(server: SshServer, pythons: dict[str, Path], artifacts: dict[str, Path],
          tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One fleet run: this machine through sshd, an emulated Pi 5 (ORT) and an emulated RK3288 (ncnn)."""
    from edgevit.bench.fleet import load_fleet, run_fleet

    d = tmp_path_factory.mktemp("fleet")
    inv = d / "devices.yaml"
    inv.write_text(yaml.safe_dump({"ssh_config": str(server.config), "devices": [
        {"name": "loopback", "ssh": ALIAS, "profile": "host", "python": sys.executable, "threads": 1,
         "cache": str(d / "cache-x86")},
        {"name": "pi5-qemu", "ssh": _sshd.ALIAS_C, "profile": "arm-a76", "python": str(pythons["arm64"]),
         "cache": str(d / "cache-arm64"), "threads": 2},
        {"name": "rk3288-qemu", "ssh": _sshd.ALIAS_B, "profile": "arm-a17", "python": str(pythons["armhf"]),
         "cache": str(d / "cache-armhf"), "threads": 2},
    ]}))
    outcomes = run_fleet(load_fleet(inv), inputs=["cas_vit_xs"], precision=["fp32"], protocol=TINY,
                         timeout_s=1800)
    return {"outcomes": {o.device.name: o for o in outcomes}, "dir": d}


def test_aarch64_board_runs_onnxruntime_there(fleet: dict) -> None:
    o = fleet["outcomes"]["pi5-qemu"]
    assert o.ok, (o.error, [c.error for c in o.results.cases] if o.results else None)
    res = o.results
    assert res.host["arch"] == "aarch64" and res.host["machine"] == "aarch64" and res.host["kernel_arch"] == "x86_64"
    assert res.host["cpu"] == "Cortex-A76" and "asimddp" in res.host["features"]  # the board's cpuinfo
    (case,) = res.cases
    assert case.case.runtime == "onnxruntime" and case.output_shape == [1, 1000]
    assert res.versions["onnxruntime"] == metadata.version("onnxruntime")
    assert res.setup["measured_on"] == "emulated" and not res.setup["on_device"]
    assert any(w.startswith("EMULATED:") for w in res.setup["warnings"])


def test_armv7_board_runs_ncnn_there(fleet: dict) -> None:
    o = fleet["outcomes"]["rk3288-qemu"]
    assert o.ok, (o.error, [c.error for c in o.results.cases] if o.results else None)
    res = o.results
    assert res.host["arch"] == "armv7l" and res.host["kernel_arch"] == "x86_64" and res.host["cpu"] == "Cortex-A17"
    assert "neon" in res.host["features"] and "vfpv4" in res.host["features"]
    (case,) = res.cases
    # the A17 profile's runtime, chosen because the board has ncnn (and no ORT: no armv7 wheels)
    assert case.case.runtime == "ncnn" and case.case.target == "ncnn" and case.output_shape == [1, 1000]
    assert res.versions["ncnn"] == metadata.version("ncnn") and "onnxruntime" not in res.versions
    assert res.setup["measured_on"] == "emulated"


def test_tables_never_show_emulated_timings_as_device_timings(fleet: dict) -> None:
    from edgevit.bench.fleet import combined_rows, plot_fleet
    from edgevit.bench.tables import to_markdown

    outs = fleet["outcomes"]
    assert outs["loopback"].ok and outs["loopback"].results.setup["measured_on"] == "remote"
    named = [(n, o.results) for n, o in outs.items()]
    header, rows = combined_rows(named)
    assert "EMULATED" in header[2] and "EMULATED" in header[3] and "EMULATED" not in header[1]
    (row,) = rows
    assert row[1].endswith("ms (onnxruntime)")
    assert row[2] == "ran (onnxruntime, emulated)" and row[3] == "ran (ncnn, emulated)"
    md = to_markdown(outs["pi5-qemu"].results)
    assert "EMULATED (qemu): correctness only, NOT device timings" in md.splitlines()[0]
    png = plot_fleet(named, fleet["dir"] / "fleet.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    for d in ("cache-arm64", "cache-armhf"):
        assert processes_mentioning(str(fleet["dir"] / d)) == []
        assert list((fleet["dir"] / d / "runs").iterdir()) == []


def test_strict_and_regress_refuse_emulated_boards(fleet: dict, server: SshServer, pythons: dict[str, Path],
                                                   artifacts: dict[str, Path], tmp_path: Path) -> None:
    from edgevit.bench.api import plan
    from edgevit.bench.regress import regress
    from edgevit.bench.remote import RemoteExecutor, SshTarget

    target = SshTarget(ALIAS, ssh_config=server.config, python=str(pythons["arm64"]), cache=str(tmp_path / "c"))
    with RemoteExecutor(target) as ex:
        assert ex.emulated
        with pytest.raises(ConfigError, match="is emulated"):
            plan([artifacts["onnx"]], profile="arm-a76", strict=True, executor=ex)
    res = fleet["outcomes"]["pi5-qemu"].results
    with pytest.raises(ConfigError, match="measured under emulation"):
        regress(res, res)


def test_doctor_on_armv7_board_without_ncnn(server: SshServer, pythons: dict[str, Path], tmp_path: Path) -> None:
    from edgevit.bench.remote import SshTarget, inspect_board

    data = inspect_board(SshTarget(ALIAS, ssh_config=server.config, python=str(pythons["armhf-bare"]),
                                   cache=str(tmp_path / "c")))
    assert data["emulated"] and data["facts"]["arch"] == "armv7l" and data["facts"]["numpy"]  # Debian's numpy
    assert not data["facts"]["runtimes"]["ncnn"]["available"]
    pip = [c for c in data["install"] if " -m pip install" in c]
    assert len(pip) == 1 and pip[0].endswith(f"--no-deps ncnn=={metadata.version('ncnn')}"), data["install"]
    assert not any("onnxruntime" in c or "numpy" in c for c in data["install"])  # no armv7 ORT wheels
