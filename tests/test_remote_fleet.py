"""`edgevit bench --fleet devices.yaml`: the inventory is validated strictly (one-line errors), every
board runs its own queue in parallel, and the merged table keeps each device in its own column."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from edgevit.bench.fleet import combined_markdown, combined_rows, load_fleet, run_fleet
from edgevit.bench.protocol import Protocol
from edgevit.errors import ConfigError
from tests import _sshd
from tests._sshd import ALIAS, ALIAS_B, SshServer

GOOD = {"name": "tinker", "ssh": "pi@tinker.local", "profile": "arm-a17"}
BAD = [
    ({"devices": []}, "'devices' must list at least one board"),
    ({"devices": [GOOD], "boards": []}, "unknown field 'boards'"),
    ({"devices": [{**GOOD, "colour": "red"}]}, "devices[0]: unknown field 'colour'"),
    ({"devices": [{"name": "a", "profile": "arm-a17"}]}, "devices[0]: missing required field 'ssh'"),
    ({"devices": [{**GOOD, "profile": "arm-a99"}]}, "devices[0]: unknown device profile 'arm-a99'"),
    ({"devices": [{**GOOD, "threads": "4"}]}, "devices[0]: field 'threads' must be int"),
    ({"devices": [{**GOOD, "threads": 0}]}, "devices[0]: threads must be >= 1"),
    ({"devices": [{**GOOD, "cooldown": -1}]}, "devices[0]: cooldown must be >= 0"),
    ({"devices": [{**GOOD, "ssh": "-oProxyCommand=sh"}]}, "devices[0]: --on takes an ssh destination"),
    ({"devices": [{**GOOD, "python": "python3 -X dev"}]}, "devices[0]: the board's python must be"),
    ({"devices": [{**GOOD, "name": "a b"}]}, "devices[0]: name 'a b' must be"),
    ({"devices": [GOOD, {**GOOD, "ssh": "other"}]}, "two devices are named 'tinker'"),
    ({"devices": [GOOD, {**GOOD, "name": "twin"}]}, "two devices are the same board (pi@tinker.local)"),
    ("- just a list", "an inventory is a mapping"),
]


@pytest.mark.parametrize(("data", "expected"), BAD, ids=[e for _, e in BAD])
def test_inventory_errors_are_one_line(tmp_path: Path, data: object, expected: str) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    msg = str(err.value)
    assert expected in msg and "\n" not in msg and msg.startswith(str(path))


def test_inventory_fields(tmp_path: Path) -> None:
    (tmp_path / "cfg").write_text("")
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump({"ssh_config": "cfg", "cooldown": 2, "devices": [
        {**GOOD, "runtime_options": {"powersave": 2}, "threads": 4, "notes": "RK3288"},
        {"name": "pi5", "ssh": "pi@pi5:2222", "profile": "arm-a76", "cooldown": 0, "python": "/opt/venv/bin/python"},
    ]}))
    a, b = load_fleet(path)
    assert a.ssh_config == (tmp_path / "cfg").resolve() and a.cooldown == 2.0 and a.runtime_options == {"powersave": 2}
    assert b.cooldown == 0.0 and b.target().host_port() == ("pi@pi5", 2222) and b.target().python == "/opt/venv/bin/python"


@pytest.mark.skipif(bool(_sshd.missing()), reason=_sshd.missing() or "sshd present")
def test_fleet_of_two_boards(tmp_path: Path) -> None:
    from edgevit.bench.synthetic import conv_stack

    server = SshServer(tmp_path / "sshd").start()
    try:
        art = tmp_path / "stack3.onnx"
        conv_stack(art, 3)
        inv = tmp_path / "devices.yaml"
        inv.write_text(yaml.safe_dump({"ssh_config": str(server.config), "devices": [
            {"name": "alpha", "ssh": ALIAS, "profile": "host", "python": sys.executable,
             "cache": str(tmp_path / "cache-a"), "threads": 1, "runtime_options": {"optimization": "basic"}},
            {"name": "beta", "ssh": ALIAS_B, "profile": "arm-a72", "python": sys.executable,
             "cache": str(tmp_path / "cache-b"), "threads": 2},
        ]}))
        outcomes = run_fleet(load_fleet(inv), inputs=[str(art)], protocol=Protocol(warmup=1, warmup_seconds=0,
                                                                                    runs=8))
    finally:
        server.kill()
    assert [o.device.name for o in outcomes] == ["alpha", "beta"] and all(o.ok for o in outcomes), outcomes
    a, b = (o.results for o in outcomes)
    # each board's results keep that board's profile, threads and facts
    assert a.setup["profile"] == "host" and b.setup["profile"] == "arm-a72"
    assert [c.case.threads for c in a.cases] == [1] and [c.case.threads for c in b.cases] == [2]
    assert a.cases[0].case.options == {"optimization": "basic"} and b.cases[0].case.options == {}
    assert a.setup["board"]["name"] == "alpha" and b.setup["board"]["name"] == "beta"
    assert a.setup["board"]["cache"] != b.setup["board"]["cache"]
    named = [("alpha", a), ("beta", b)]
    header, rows = combined_rows(named)
    assert header[1].startswith("alpha (host;") and header[2].startswith("beta (arm-a72;")
    (row,) = rows
    assert row[0] == "stack3 fp32 b1" and row[1].endswith("ms (onnxruntime)") and row[2].endswith("ms (onnxruntime)")
    assert "| stack3 fp32 b1 |" in combined_markdown(named)
    # an emulated board appears without a number: it has no device timing
    b.setup["measured_on"] = "emulated"
    header, rows = combined_rows(named)
    assert "EMULATED" in header[2] and rows[0][2] == "ran (onnxruntime, emulated)"


def test_cli_fleet_and_merge(tmp_path: Path) -> None:
    """`bench --fleet` writes one file per device plus the combined table; `merge` rebuilds it."""
    if _sshd.missing():
        pytest.skip(_sshd.missing())
    from typer.testing import CliRunner

    from edgevit.bench.synthetic import conv_stack
    from edgevit.cli import app

    server = SshServer(tmp_path / "sshd").start()
    try:
        art = tmp_path / "stack2.onnx"
        conv_stack(art, 2)
        inv = tmp_path / "devices.yaml"
        inv.write_text(yaml.safe_dump({"devices": [
            {"name": "alpha", "ssh": ALIAS, "profile": "host", "python": sys.executable, "threads": 1},
            {"name": "down", "ssh": "edgevit-closed-port", "profile": "arm-a72"},
        ]}))
        out = tmp_path / "out"
        r = CliRunner().invoke(app, ["bench", str(art), "--fleet", str(inv), "--ssh-config", str(server.config),
                                     "--runs", "5", "--warmup", "1", "--json", f"{out}/", "--markdown", f"{out}/",
                                     "--plot", str(out / "fleet.png")])
    finally:
        server.kill()
    assert r.exit_code == 1, r.output  # one board was unreachable: said, and the exit code says so
    assert "down: cannot connect to down (edgevit-closed-port): " in r.output and "Traceback" not in r.output
    (js,) = out.glob("bench_alpha_*.json")
    assert (out / "fleet.md").read_text().count("| stack2 fp32 b1 |") == 1
    assert "**down**: no results: cannot connect" in (out / "fleet.md").read_text()
    assert (out / "fleet.png").read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(app, ["merge", str(js), "--markdown", str(tmp_path / "merged.md")])
    assert r.exit_code == 0 and "| stack2 fp32 b1 |" in (tmp_path / "merged.md").read_text()
