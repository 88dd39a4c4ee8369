"""What a new user meets in the first hour: seeded default weights that prove something, notices before
long work, progress on stderr with clean --json on stdout, bench reusing what export wrote and going on
past a failed case, tables that fit 80 columns, one size unit, honest columns, CLI habits, plots."""
from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app

runner = CliRunner()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ------------------------------------------------------------------------------- the embedded default


@pytest.mark.parametrize("name", ["fcaformer_l1", "cabvit_p_l0", "cas_vit_xs", "stvit_small"])
def test_seeded_default_weights_give_realistic_input_dependent_logits(name):
    from edgevit.models import build_reference
    from edgevit.quantize.data import embedded_eval_images, from_embedded

    model = build_reference(name)
    photos = torch.from_numpy(embedded_eval_images(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    crops = torch.from_numpy(from_embedded(img_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                           samples=0).holdout)
    with torch.no_grad():
        y, yc = model(photos).numpy(), model(crops).numpy()
    assert 0.3 < y.std() < 5 and np.isfinite(yc).all() and np.abs(yc).max() < 50  # stable on other views too
    between = (y - y.mean(0)).std()
    assert between > 0.3 * y.std(), "logits must depend on the image, or a fidelity check proves nothing"
    assert len(set(y.argmax(1))) >= 2


def test_seeded_weights_do_not_depend_on_thread_count():
    import subprocess
    import sys

    code = ("import sys, torch; torch.set_num_threads(int(sys.argv[1])); "
            "from edgevit.models import build_reference, state_dict_sha256; "
            "print(state_dict_sha256(build_reference('cas_vit_xs', img_size=96)))")
    env = {"EDGEVIT_CACHE": "/nonexistent/edgevit-no-cache", "PATH": "/usr/bin:/bin"}  # no cached copy
    out = {t: subprocess.run([sys.executable, "-c", code, t], capture_output=True, text=True, env=env,
                             check=True).stdout.strip() for t in ("1", "2")}
    assert out["1"] == out["2"] and len(out["1"]) == 64


def test_the_notice_comes_before_the_work_and_on_the_failure_path(tmp_path, cache):
    res = runner.invoke(app, ["export", "toy_vit", "-o", str(tmp_path / "a/")])
    err = res.stderr.splitlines()
    assert res.exit_code == 0 and err[0].startswith("note: toy_vit: no --checkpoint, so the weights are seeded")
    assert "RandomWeightsWarning" not in res.stderr and "warnings.warn" not in res.stderr
    few = tmp_path / "few"
    few.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((40, 40, 3), i * 60, np.uint8)).save(few / f"{i}.png")
    res = runner.invoke(app, ["export", "toy_vit", "--int8", "--calib-data", str(few), "-o", str(tmp_path / "b/")])
    assert res.exit_code == 2 and res.stderr.splitlines()[0].startswith("note: toy_vit: no --checkpoint")


def test_long_steps_show_progress_on_stderr_and_json_stays_clean(tmp_path, cache):
    # --int8-force: whether int8 pays for the toy on this machine is not the question here (a refusal
    # exits before the verify step); that behaviour has its own tests
    res = runner.invoke(app, ["export", "toy_vit", "--int8", "--int8-force", "-o", str(tmp_path / "o/")])
    for step in ("build toy_vit", "deploy form", "calibrate on", "export onnx int8", "verify on"):
        assert f"✓ {step}" in res.stderr, (step, res.stderr)
    assert "✓" not in res.stdout
    res = runner.invoke(app, ["models", "--family", "toy", "--count", "--json"])
    assert "✓ count parameters" in res.stderr and json.loads(res.stdout)[0]["params_m"] > 0


# --------------------------------------------------------------------------------------- bench


def test_bench_reuses_what_export_wrote(tmp_path, cache):
    assert runner.invoke(app, ["export", "toy_vit", "-o", str(tmp_path / "out/")]).exit_code == 0
    res = runner.invoke(app, ["bench", "toy_vit", "-p", "fp32", "--runs", "3", "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    case = json.loads((tmp_path / "r.json").read_text())["cases"][0]
    assert case["case"]["artifact"] == str((tmp_path / "out" / "toy_vit_fp32.onnx").resolve())
    assert "reusing" in res.stderr and "exporting toy_vit" not in res.stderr
    res = runner.invoke(app, ["bench", str(tmp_path / "out"), "--runs", "3"])  # the export's folder
    assert res.exit_code == 0 and "toy_vit/fp32/b1" in res.stdout


def test_a_failed_case_is_reported_and_the_others_are_measured(tmp_path, cache, monkeypatch):
    from edgevit.backends import _registry
    from edgevit.bench.synthetic import conv_stack
    from edgevit.errors import ExportError

    onnx = _registry.get_backend("onnx")

    def failing(req):
        raise ExportError("the exporter gave up (test)")

    monkeypatch.setitem(_registry._BACKENDS, "onnx", dataclasses.replace(onnx, export=failing))
    good = conv_stack(tmp_path / "net.onnx", 2)
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "toy_vit", str(good), "-p", "fp32", "--runs", "3", "--json", str(out)])
    assert res.exit_code == 1 and "1 of 2 case(s) failed" in res.stderr
    assert "failed: toy_vit/onnxruntime/fp32/b1/t2: export failed: the exporter gave up (test)" in res.stderr
    assert "edgevit-tmp" not in res.stderr
    cases = {c["case"]["id"]: c for c in json.loads(out.read_text())["cases"]}
    assert cases["net/onnxruntime/fp32/b1/t2"]["ok"] and not cases["toy_vit/onnxruntime/fp32/b1/t2"]["ok"]


def _results(n: int, *, on_device: bool = False):
    from edgevit.bench.api import BenchResults
    from edgevit.bench.runner import Case, CaseResult

    cases = []
    for i in range(n):
        case = Case(id=f"fcaformer_l{i}/onnxruntime/int8/b1/t4", artifact=f"/x/m{i}.onnx", runtime="onnxruntime",
                    target="onnx", precision="int8", threads=4, model=f"fcaformer_l{i}", macs=1_370_000_000,
                    params=6_190_000, model_size_bytes=13_861_234,
                    predicted={"device": "arm-a17", "predicted_ms": 505.2, "interval_ms": [401.0, 612.9]})
        samples = [1234.5678 + j for j in range(10)]
        from edgevit.bench.protocol import summarize

        cases.append(CaseResult(case, True, stats=summarize(samples), samples_ms=samples, load_ms=123.4,
                                first_ms=1500.25, peak_rss_mb=1234.56))
    setup = {"profile": "arm-a17", "on_device": on_device, "runtimes": ["onnxruntime"], "threads": 4,
             "precisions": ["int8"], "batch": [1], "warnings": [],
             "protocol": {"warmup": 5, "warmup_seconds": 0.2, "runs": 10, "min_seconds": 0.0}}
    host = {"cpu": "AMD EPYC", "cores": 2, "arch": "x86_64", "memory_gb": 23.5, "os": "Linux"}
    profile = {"references": [{"model": "fcaformer_l1", "latency_ms": 312, "batch": 1}]}
    return BenchResults(setup, host, {"onnxruntime": "1.32.0"}, cases, profile=profile)


def test_the_bench_table_fits_80_columns_and_never_cuts_a_number():
    from rich.console import Console

    from edgevit.bench.tables import bench_table
    from edgevit.richtable import show

    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    show(console, bench_table(_results(3)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for number in ("1239.07", "1242.67", "1234.56", "13.86", "505 (401-613)"):
        assert number in text.replace("\n", " ") or number in text, (number, text)
    assert "…" not in text
    console = Console(width=80, record=True, file=open("/dev/null", "w"))
    show(console, bench_table(_results(3), wide=True))  # wider than 80: printed at its own width, numbers whole
    wide = console.export_text()
    assert "1500.25" in wide and "…" not in wide


def test_a_devices_figure_is_never_beside_another_machines_measurement():
    from edgevit.bench.tables import rows, to_markdown

    off = rows(_results(2))
    assert all(r["reference_ms"] is None for r in off) and off[0]["predicted_ms"] == 505.2
    assert "| 312 |" not in to_markdown(_results(2))
    on = rows(_results(2, on_device=True))
    assert on[1]["reference_ms"] == 312.0  # measured on the device itself: the published figure is comparable


def test_one_size_unit(tmp_path, cache):
    rep = runner.invoke(app, ["export", "toy_vit", "-o", str(tmp_path / "o/")])
    size = re.search(r"\(([\d.]+) MB\)", rep.stdout).group(1)
    res = runner.invoke(app, ["bench", str(tmp_path / "o" / "toy_vit_fp32.onnx"), "--runs", "3"])
    assert size in res.stdout  # the same bytes, the same MB (10^6)


def test_another_presets_int8_gets_its_own_name(tmp_path, cache):
    res = runner.invoke(app, ["export", "toy_vit", "--int8", "--preset", "arm64", "-o", str(tmp_path / "o/")])
    assert res.exit_code == 0 and (tmp_path / "o" / "toy_vit_int8_arm64.onnx").is_file()


# -------------------------------------------------------------------------------------- CLI habits


def test_cli_habits():
    from edgevit import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"edgevit {__version__}"
    res = runner.invoke(app, ["bench", "toy_vit", "-t", "2"])  # -t is --target (export), never --threads
    assert res.exit_code == 2
    for cmd in ("export", "bench", "verify", "regress", "devices", "models", "predict", "doctor"):
        text = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"}).stdout
        assert "<bool>" not in text and "<str>" not in text and "<int>" not in text, cmd
    shown = runner.invoke(app, ["devices", "arm-a17"]).stdout
    assert "GateSettings(" not in shown and "('" not in shown and "Reference(" not in shown
    bench = runner.invoke(app, ["bench", "toy_vit", "--device", "arm-a17", "--strict"])
    assert "not the arm-a17 device" in bench.stderr and "NOT a arm" not in bench.stderr


# --------------------------------------------------------------------------------------------- plots


def test_label_positions_never_collide():
    from edgevit.bench.plots import spread_labels

    ys = [1.0, 1.01, 1.02, 5.0, 1.005]
    placed = spread_labels(ys, 0.5)
    assert sorted(placed) == sorted(set(placed))
    gaps = np.diff(sorted(placed))
    assert (gaps >= 0.5 - 1e-12).all() and all(p >= y for p, y in zip(placed, ys, strict=True))


def test_the_plot_draws_points_per_model_not_lines(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from edgevit.bench import plots

    captured = {}
    real = plots._panel

    def spy(ax, points, styles, log_y):
        real(ax, points, styles, log_y)
        captured.setdefault("lines", []).extend(ax.get_lines())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plots._panel = spy
        try:
            path = plots.plot(_results(3), tmp_path / "p.png")
        finally:
            plots._panel = real
    assert Path(path).is_file()
    drawn = [ln for ln in captured["lines"] if len(ln.get_xdata()) > 1 and ln.get_linestyle() not in ("None", "")]
    assert drawn == [], "a line joins unrelated models"
