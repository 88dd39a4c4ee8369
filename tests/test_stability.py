"""Stability of every bench case: /proc accounting, the busy/spread judgement, a real hog during a real case,
the flag in the table, JSON, CSV and Markdown, and `regress --update` refusing an unstable run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgevit.bench import stability, tables
from edgevit.bench.api import benchmark, load_results
from edgevit.bench.stability import Snapshot, assess, between, inflation, spread
from edgevit.bench.synthetic import conv_stack
from edgevit.cli import app

HAS_PROC = Path("/proc/stat").is_file()


def test_proc_stat_parsing(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 20 30 400 5 6 7 8 0 0\ncpu0 50 10 15 200 2 3 3 4 0 0\ncpu1 50 10 15 200 3 3 4 4 0 0\n"
                    "intr 1 2 3\n")
    busy, steal, cpus = stability._proc_stat(stat)
    tick = os.sysconf("SC_CLK_TCK")
    assert (busy, steal, cpus) == pytest.approx(((100 + 20 + 30 + 6 + 7) / tick, 8 / tick, 2))
    assert stability._proc_stat(tmp_path / "missing") is None


def test_between_attributes_cpu_to_others():
    before = Snapshot(time=10.0, busy_s=100.0, steal_s=1.0, own_s=5.0, cpus=2, load1=0.5)
    after = Snapshot(time=12.0, busy_s=103.0, steal_s=1.2, own_s=6.8, cpus=2, load1=1.5)
    facts = between(before, after)  # 3 s busy in 2 s, 1.8 of them ours
    assert facts["own_cores"] == pytest.approx(0.9) and facts["others_cores"] == pytest.approx(0.6)
    assert facts["steal_cores"] == pytest.approx(0.1) and (facts["load1_start"], facts["load1_end"]) == (0.5, 1.5)
    assert between(None, after) == {} and between(after, before) == {}


def test_assess_reasons_and_inflation():
    quiet = {"others_cores": 0.02, "steal_cores": 0.0, "own_cores": 1.0, "cpus": 2, "load1_start": 0.1}
    tight = [10.0 + 0.01 * i for i in range(50)]
    ok = assess(quiet, tight)
    assert ok["stable"] and ok["reasons"] == [] and ok["known"] and ok["spread"] == pytest.approx(0.245 / 10.245, rel=1e-3)
    assert inflation(ok, 1) == 1.0
    busy = assess(quiet | {"others_cores": 1.1, "steal_cores": 0.2, "own_cores": 0.5}, [10, 20, 10, 20, 30, 10])
    assert not busy["stable"] and busy["flags"] == ["busy", "steal", "spread"]
    assert "other processes used 1.10 of 2 cores" in busy["reasons"][0] and "steal" in busy["reasons"][1]
    assert inflation(busy, 1) == pytest.approx(2.0)  # it got half a core: up to 2x from sharing alone
    unknown = assess({}, tight)
    assert unknown["stable"] and not unknown["known"]  # no /proc: only the spread is judged
    assert spread([1.0, 2.0]) is None


def _hogs(n: int, seconds: float) -> list[subprocess.Popen]:
    code = "import time\nend = time.monotonic() + float(__import__('sys').argv[1])\nwhile time.monotonic() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code, str(seconds)]) for _ in range(n)]


@pytest.fixture(scope="module")
def busy_run(tmp_path_factory):
    """A real case measured while this test keeps every CPU busy with bounded hogs."""
    root = tmp_path_factory.mktemp("stab")
    art = conv_stack(root / "net.onnx", 6)
    hogs = _hogs(os.cpu_count() or 2, 60)
    try:
        time.sleep(0.3)
        res = benchmark([art], threads=1, runs=40, warmup=2, warmup_seconds=0.1, min_seconds=0.5,
                        cache_root=root / "cache")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return res, root


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc/stat (Linux)")
def test_busy_flag_set_when_a_hog_runs(busy_run, tmp_path):
    res, _ = busy_run
    (case,) = res.cases
    st = case.stability
    assert case.ok and st["known"] and not st["stable"] and "busy" in st["flags"], st
    assert st["others_cores"] > stability.BUSY_CORES and st["wall_s"] >= 0.5 and st["cpus"] == (os.cpu_count() or 2)
    assert any("busy machine" in w for w in case.warnings)
    # every output says so, with the reason
    md = tables.to_markdown(res)
    row = tables.parse_markdown_table(md)[0]
    assert row["machine"].startswith("⚠ busy") and "busy machine: other processes used" in md
    csv_row = tables.rows(res)[0]
    assert csv_row["stable"] is False and "busy machine" in csv_row["unstable_reasons"]
    path = tables.write_json(res, tmp_path / "r.json")
    assert json.loads(path.read_text())["cases"][0]["stability"]["stable"] is False
    assert load_results(path).cases[0].stability == st  # read back intact
    from rich.console import Console

    from edgevit.richtable import show

    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    show(console, tables.bench_table(res))
    shown = console.export_text()
    assert max(len(line) for line in shown.splitlines()) <= 80, shown  # the mark keeps the 80 columns
    text = " ".join(shown.split())
    assert "net/fp32/b1 ⚠" in text and "⚠ unstable: busy machine" in text


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc/stat (Linux)")
def test_update_refuses_an_unstable_run(busy_run, tmp_path, monkeypatch):
    res, _ = busy_run
    cur = tables.write_json(res, tmp_path / "cur.json")
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    new = tmp_path / "baseline.json"
    out = runner.invoke(app, ["regress", str(cur), "--baseline", str(new), "--update"])
    assert out.exit_code == 2 and "refusing to write a baseline from an unstable run" in out.output, out.output
    assert "busy machine" in out.output and "--force" in out.output and not new.exists()
    out = runner.invoke(app, ["regress", str(cur), "--baseline", str(new), "--update", "--force"])
    assert out.exit_code == 0 and new.exists(), out.output
    # with a baseline present, --update still refuses without --force and leaves it untouched
    before = new.read_bytes()
    out = runner.invoke(app, ["regress", str(cur), "--baseline", str(new), "--update"])
    assert out.exit_code == 2 and new.read_bytes() == before
    out = runner.invoke(app, ["regress", str(cur), "--baseline", str(new), "--force"])
    assert out.exit_code == 2 and "--force only applies to --update" in out.output
