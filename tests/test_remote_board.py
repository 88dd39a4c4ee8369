"""The pure parts of the remote path: destinations, ssh error lines, hygiene warnings from clock and
temperature readings (on a fake sysfs), install commands per architecture, the bundle's contents."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgevit.bench import board
from edgevit.bench.remote import SshTarget, install_commands, ssh_failure, tree_sha256
from edgevit.errors import ConfigError


@pytest.mark.parametrize(("dest", "expected"), [
    ("pi@tinker", ("pi@tinker", None)),
    ("tinker:2222", ("tinker", 2222)),
    ("pi@10.0.0.7:22", ("pi@10.0.0.7", 22)),
    ("pi@[fe80::1]:2200", ("pi@[fe80::1]", 2200)),
    ("my-alias", ("my-alias", None)),
    ("ssh://pi@tinker:2222", ("ssh://pi@tinker:2222", None)),  # ssh parses its own URI form
])
def test_destinations(dest: str, expected: tuple[str, int | None]) -> None:
    assert SshTarget(dest).host_port() == expected


@pytest.mark.parametrize("dest", ["", "-oProxyCommand=sh", "pi@tinker ls", "a\nb"])
def test_bad_destinations_are_refused(dest: str) -> None:
    with pytest.raises(ConfigError, match="--on takes an ssh destination"):
        SshTarget(dest)


def test_ssh_failure_lines() -> None:
    assert ssh_failure("b", "Warning: x\nssh: connect to host b port 22: Connection refused\n") == \
        "cannot connect to b: ssh: connect to host b port 22: Connection refused"
    assert "(the board refused the key" in ssh_failure("b", "pi@b: Permission denied (publickey).")
    assert "edgevit never accepts host keys" in ssh_failure("b", "Host key verification failed.")


def _sysfs(root: Path, freqs: dict[str, int], temps: dict[str, int], governor: str = "performance") -> None:
    for policy, khz in freqs.items():
        d = root / "cpufreq" / policy
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{khz}\n")
        (d / "scaling_governor").write_text(governor + "\n")
        (d / "cpuinfo_max_freq").write_text("1800000\n")
    for i, (kind, milli) in enumerate(temps.items()):
        z = root / "thermal" / f"thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(f"{milli}\n")


def test_clock_and_temperature_readings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sysfs(tmp_path, {"policy0": 1416000, "policy4": 1800000}, {"soc-thermal": 51250, "gpu-thermal": 49000})
    monkeypatch.setattr(board, "_CPUFREQ", tmp_path / "cpufreq")
    monkeypatch.setattr(board, "_THERMAL", tmp_path / "thermal")
    assert board.clocks_mhz() == {"policy0": 1416, "policy4": 1800}
    assert board.temperatures_c() == {"soc-thermal": 51.2, "gpu-thermal": 49.0}
    assert board._per_policy("scaling_governor") == {"policy0": "performance", "policy4": "performance"}
    sampler = board._Sampler(0.01)
    sampler.start()
    import time

    time.sleep(0.1)
    (tmp_path / "cpufreq" / "policy4" / "scaling_cur_freq").write_text("1200000\n")  # the board throttles
    time.sleep(0.1)
    sampler.stop.set()
    sampler.join()
    during = sampler.summary()
    assert during["freq_mhz_min"]["policy4"] == 1200 and during["freq_mhz_max"]["policy4"] == 1800
    before = {"freq_mhz": {"policy0": 1416, "policy4": 1800}}
    after = board.conditions()
    warnings = board.case_warnings(before, during, after, {"policy0": "performance", "policy4": "performance"})
    assert warnings == ["clock dropped during the case: policy4 1800 -> 1200 MHz (throttling)"]
    # an ondemand governor moves the clock on purpose: one governor warning per run instead
    assert board.case_warnings(before, during, after, {"policy4": "ondemand", "policy0": "ondemand"}) == []
    assert "policy4 ondemand" in board.governor_warning({"policy0": "performance", "policy4": "ondemand"})
    assert board.governor_warning({"policy0": "performance"}) == "" and board.governor_warning({}) == ""
    hot = board.case_warnings({}, {"thermal_c_max": 83.0}, {"thermal_c": {}}, {})
    assert hot and hot[0].startswith("board at 83 °C during the case")


def test_userland_arch() -> None:
    import struct

    assert board.userland_arch("x86_64") == "x86_64"
    assert board.userland_arch("aarch64") == ("armv7l" if struct.calcsize("P") == 4 else "aarch64")


def test_install_commands_per_architecture() -> None:
    local = {"numpy": "2.4.6", "onnxruntime": "1.32.0", "ncnn": "1.0.20261020"}
    none = {"onnxruntime": {"available": False}, "ncnn": {"available": False}}
    pi64 = {"arch": "aarch64", "numpy": "", "pip": True, "runtimes": none}
    assert install_commands(pi64, "python3", local) == [
        "python3 -m pip install --user numpy==2.4.6 onnxruntime==1.32.0"]
    rk = {"arch": "armv7l", "numpy": "", "pip": False, "externally_managed": True, "runtimes": none}
    cmds = install_commands(rk, "python3", local)
    assert cmds[0] == "sudo apt-get install -y python3-numpy python3-pip python3-venv"
    assert cmds[1] == "python3 -m venv --system-site-packages ~/.venvs/edgevit"
    assert cmds[2] == "~/.venvs/edgevit/bin/python -m pip install --no-deps ncnn==1.0.20261020"
    ready = {"arch": "aarch64", "numpy": "2.0", "pip": True, "runtimes": {"onnxruntime": {"available": True}}}
    assert install_commands(ready, "python3", local) == []


def test_bundle_holds_every_registered_runner_and_no_model_code(tmp_path: Path) -> None:
    from edgevit.bench.bundle import build_bundle, roots
    from edgevit.backends import runtimes

    b = build_bundle(tmp_path)
    assert {spec.runner.__module__ for spec in runtimes().values()} <= set(roots()) <= set(b.modules)
    assert not any(m.startswith(("edgevit.models", "edgevit.rewrite", "edgevit.cli")) or m == "edgevit.export"
                   for m in b.modules)
    assert build_bundle(tmp_path).path == b.path and b.path.name.startswith(b.sha256[:16])  # keyed by content


def test_tree_hash_is_content_only(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "m.ncnn", tmp_path / "b" / "m.ncnn"
    for d in (a, b):
        d.mkdir(parents=True)
        (d / "model.param").write_text("7767517\n")
        (d / "model.bin").write_bytes(b"\0" * 16)
    assert tree_sha256([a]) == tree_sha256([b])
    (b / "model.bin").write_bytes(b"\1" * 16)
    assert tree_sha256([a]) != tree_sha256([b])


def test_arm_boards_are_named_by_their_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """32-bit kernels print a generic 'ARMv7 Processor rev 1 (v7l)': the core comes from CPU part, so a
    real RK3288 matches the arm-a17 profile (and --strict accepts it); big.LITTLE names both clusters."""
    from tests.emulation import harness as emu
    from edgevit.bench import profiles as pr

    rk3399 = ("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd03\n\n"
              "processor\t: 4\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n")
    seen = {}
    for name, text in (("a17", emu.ARMHF.cpuinfo()), ("a76", emu.ARM64.cpuinfo()), ("rk3399", rk3399)):
        monkeypatch.setattr(pr.Path, "read_text", lambda self, *a, _t=text, **k: _t)
        seen[name] = pr._cpu_name(pr._cpuinfo())
    monkeypatch.undo()
    assert seen == {"a17": "Cortex-A17", "a76": "Cortex-A76", "rk3399": "Cortex-A53 + Cortex-A72"}
    a17 = pr.load_profile("arm-a17")
    board_host = pr.HostInfo("tinker", "Linux 4.4", "armv7l", seen["a17"], 4, 4, 1.8, 2.0, "3.11.2")
    assert pr.host_mismatches(a17, board_host) == []
    rk = pr.HostInfo("rk", "Linux", "aarch64", seen["rk3399"], 6, 6, 1.8, 4.0, "3.11")
    assert pr.host_mismatches(pr.load_profile("arm-a72"), rk) == []
