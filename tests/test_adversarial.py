"""Bad and unusual inputs, one test per class of defect (not per example): nothing lost, nothing misleading,
bounded work, no leftovers, and user errors reported as user errors (exit 1/2, one line), never exit 3."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app
from edgevit.errors import CalibrationError, ConfigError, EdgeVitError, OutputError, VerificationError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _export(**kw):
    from edgevit.export import export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export("toy_vit", **kw)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return _export(output=tmp_path_factory.mktemp("adv") / "toy.onnx")


def _one_error_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith(("error:", "internal error:"))]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


# ----------------------------------------------------------------------------------------- data loss


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MiB tmpfs, filled to the brim by the test (needs root); skips where it cannot be mounted."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): the full-disk case is not exercised")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def test_a_failed_write_keeps_the_previous_file_whole(full_disk, toy):
    from edgevit.files import atomic_write_json

    art = full_disk / "toy.onnx"
    side = full_disk / "toy.onnx.json"
    shutil.copy(toy.sidecar, side)
    art.write_bytes(b"x")  # the record is what matters here
    before = side.read_bytes()
    _fill(full_disk)
    with pytest.raises(OutputError, match="the disk is full"):
        atomic_write_json(side, {"big": "y" * 200_000})
    assert side.read_bytes() == before and json.loads(before)
    assert not [p for p in full_disk.iterdir() if ".edgevit-tmp-" in p.name]


def test_verify_on_a_full_disk_is_a_user_error_and_keeps_the_record(full_disk, toy):
    shutil.copy(toy.artifact, full_disk / "toy.onnx")
    shutil.copy(toy.sidecar, full_disk / "toy.onnx.json")
    before = (full_disk / "toy.onnx.json").read_bytes()
    _fill(full_disk)
    res = runner.invoke(app, ["verify", str(full_disk / "toy.onnx")])
    assert res.exit_code == 1 and "disk is full" in _one_error_line(res)
    assert (full_disk / "toy.onnx.json").read_bytes() == before


def test_bench_checks_every_output_path_before_measuring(toy, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for flag in ("--json", "--markdown", "--csv", "--plot"):
        t0 = time.monotonic()
        res = runner.invoke(app, ["bench", str(toy.artifact), "--runs", "5", flag, f"{blocker}/sub/out"])
        assert res.exit_code != 0 and "cannot write" in _one_error_line(res)
        assert time.monotonic() - t0 < 10 and "case 1/1" not in res.stderr  # nothing was measured


def test_results_that_cannot_be_written_at_the_end_land_in_the_cache(toy, tmp_path, monkeypatch):
    from edgevit.bench import outputs
    from edgevit.bench.api import plan, run_plan
    from edgevit.bench.protocol import Protocol

    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    res = run_plan(plan([str(toy.artifact)], threads=1), Protocol(warmup=1, warmup_seconds=0, runs=3))
    (line,) = outputs.write(res, outputs.Outputs(json="/proc/edgevit-gone/x.json"))  # unwritable, even for root
    saved = Path(line.rsplit(" ", 1)[-1])
    assert "could not write /proc/edgevit-gone/x.json" in line and saved.is_relative_to(tmp_path / "cache")
    assert json.loads(saved.read_text())["cases"][0]["ok"]


# ----------------------------------------------------------------------------------- bounded work


def _png(path: Path, width: int, height: int) -> Path:
    """A valid 8-bit grey PNG of any declared size, written without ever holding the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    comp = zlib.compressobj(9)
    row = b"\0" + b"\0" * width
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_images_are_bounded_before_decoding(tmp_path):
    import resource

    from edgevit.quantize.data import center_crop, read_image

    bomb = _png(tmp_path / "bomb.png", 12000, 12000)  # 144 MP declared, ~150 KB on disk
    t0 = time.monotonic()
    with pytest.raises(CalibrationError, match=r"bomb.png declares 12000x12000"):
        read_image(bomb)
    assert time.monotonic() - t0 < 2
    with pytest.raises(CalibrationError, match="too small"):
        read_image(_png(tmp_path / "sliver.png", 100000, 2))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wide = read_image(_png(tmp_path / "wide.png", 60000, 10))  # extreme aspect: fine, and cheap
    crop = center_crop(wide, 224)
    assert crop.shape == (224, 224, 3)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: no gigabytes


def test_a_bomb_in_the_calibration_folder_is_exit_2_naming_the_file(tmp_path):
    from PIL import Image

    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(np.full((48, 48, 3), i * 5, np.uint8)).save(folder / f"{i}.png")
    _png(folder / "zz_bomb.png", 12000, 12000)
    res = runner.invoke(app, ["export", "toy_vit", "--int8", "--calib-data", str(folder), "-o", str(tmp_path / "o/")])
    assert res.exit_code == 2 and "zz_bomb.png" in _one_error_line(res)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


@pytest.mark.parametrize("mode", ["I;16", "F", "P", "CMYK", "RGBA", "LA", "1"])
def test_every_image_mode_reads_into_the_same_range(tmp_path, mode):
    from PIL import Image

    from edgevit.quantize.data import read_image

    ramp = np.tile(np.linspace(0, 1, 64), (64, 1))
    if mode == "I;16":
        im = Image.fromarray((ramp * 65535).astype(np.uint16))
    elif mode == "F":
        im = Image.fromarray(ramp.astype(np.float32))
    else:
        im = Image.fromarray((np.stack([ramp] * 3, -1) * 255).astype(np.uint8)).convert(mode)
    path = tmp_path / ("x.tif" if mode in ("I;16", "F", "CMYK") else "x.png")
    im.save(path)
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    assert (rgb == 255).mean() < 0.6 and 90 < rgb.mean() < 165, (mode, rgb.mean(), (rgb == 255).mean())


# ------------------------------------------------------------------------------- misleading success


def test_opset_is_honoured_or_refused_up_front(tmp_path):
    import onnx

    for bad in (7, 13, 30):
        with pytest.raises(ConfigError, match="exports opsets 17..23"):
            _export(output=tmp_path / "x.onnx", opset=bad)
    rep = _export(output=tmp_path / "o21.onnx", opset=21)
    got = {o.domain or "ai.onnx": o.version for o in onnx.load(str(rep.artifact)).opset_import}["ai.onnx"]
    assert got == 21 == rep.record.opset


@pytest.mark.parametrize("argv", [
    ["export", "toy_vit", "--threads", "0"],
    ["bench", "toy_vit", "--threads", "0"],
    ["verify", "{toy}", "--threads", "0"],
])
def test_zero_threads_is_refused(argv, toy, tmp_path):
    res = runner.invoke(app, [a.format(toy=toy.artifact) for a in argv] + (["-o", str(tmp_path)] if argv[0] == "export" else []))
    assert res.exit_code == 2 and "--threads must be at least 1" in _one_error_line(res)


def test_nan_outputs_are_called_nan():
    from edgevit.verify import compare, judge

    ref = np.random.default_rng(0).normal(size=(4, 10))
    bad = ref.copy()
    bad[1, 3] = np.nan
    (fail,) = judge(compare(ref, bad), "fp32")
    assert "NaN/inf" in fail and "cosine" not in fail


def test_nan_weights_are_called_broken_weights(tmp_path):
    from edgevit.models import build_reference

    state = build_reference("toy_vit").state_dict()
    state["head.weight"][:] = float("nan")
    ckpt = tmp_path / "nan.pt"
    torch.save(state, ckpt)
    res = runner.invoke(app, ["export", "toy_vit", "--checkpoint", str(ckpt), "-o", str(tmp_path / "o/")])
    assert res.exit_code == 1 and "NaN" in _one_error_line(res) and "weights are broken" in res.stderr


# ----------------------------------------------------------------------------------------- leftovers


def test_sigterm_leaves_no_partial_file_and_no_temp_folder(tmp_path):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(REPO), COLUMNS="120")
    code = "import sys, tests._toy; from edgevit.cli import main; sys.argv = ['edgevit', *sys.argv[1:]]; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "export", "toy_vit", "--int8", "-o", f"{out}/"],
                            env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    seen = ""
    for line in proc.stderr:  # wait until the exporter is at work, then stop it as CI cancellation does
        seen += line
        if "deploy form" in line:
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 143, seen + rest
    assert "terminated (SIGTERM)" in rest
    assert list(out.iterdir()) == [], list(out.iterdir())
    assert list(tmp.iterdir()) == [], list(tmp.iterdir())


def test_a_corrupt_cache_entry_is_rebuilt_not_served(tmp_path, monkeypatch):
    from edgevit.cache import get_artifact

    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = get_artifact("toy_vit", target="onnx", precision="fp32")
        first.path.write_bytes(first.path.read_bytes()[:1000])  # a torn write
        again = get_artifact("toy_vit", target="onnx", precision="fp32")
    assert not again.hit and again.path == first.path
    res = runner.invoke(app, ["verify", str(again.path)])
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------- options and user errors (exit 1/2)


def test_a_batch_larger_than_the_verification_images_exports(tmp_path):
    rep = _export(output=tmp_path / "b32.onnx", batch=32)
    assert rep.verification.passed and rep.verification.inspection["inputs"]["input"][0] == 32


def test_a_checkpoint_with_another_class_count(tmp_path):
    from edgevit.models import build_reference

    ckpt = tmp_path / "ft.pt"
    torch.save(build_reference("toy_vit", num_classes=7).state_dict(), ckpt)
    res = runner.invoke(app, ["export", "toy_vit", "--checkpoint", str(ckpt), "-o", str(tmp_path / "a/")])
    assert res.exit_code == 2 and "--num-classes" in _one_error_line(res)
    res = runner.invoke(app, ["export", "toy_vit", "--checkpoint", str(ckpt), "--num-classes", "7",
                              "-o", str(tmp_path / "b/")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "b" / "toy_vit_fp32.onnx.json").read_text())["num_classes"] == 7


def test_user_caused_conditions_are_never_internal_errors(toy, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("EDGEVIT_CACHE", str(blocker))
    res = runner.invoke(app, ["bench", "toy_vit", "--runs", "3"])
    assert res.exit_code == 2 and "EDGEVIT_CACHE" in _one_error_line(res)
    monkeypatch.delenv("EDGEVIT_CACHE")
    art = tmp_path / "t.onnx"
    shutil.copy(toy.artifact, art)
    (tmp_path / "t.onnx.json").write_text("[1, 2, 3]")
    res = runner.invoke(app, ["verify", str(art)])
    assert res.exit_code == 2 and "JSON object" in _one_error_line(res)


def test_a_missing_artifact_is_called_missing_not_an_unknown_model(tmp_path):
    for argv in (["bench", f"{tmp_path}/nope.onnx"], ["bench", "out/nope"], ["verify", f"{tmp_path}/nope.onnx"]):
        res = runner.invoke(app, argv)
        line = _one_error_line(res)
        assert res.exit_code == 2 and "not found" in line and "unknown model" not in line, line


def test_error_lines_carry_no_terminal_escapes():
    from edgevit.cli.app import one_line

    assert one_line(ConfigError("\x1b[1mbold\x1b[0m and\n\x1b[31mred\x1b[0m")) == "bold and red"


def _patched_onnx(monkeypatch, export_fn):
    from edgevit.backends import _registry

    onnx = _registry.get_backend("onnx")
    monkeypatch.setitem(_registry._BACKENDS, "onnx", dataclasses.replace(onnx, export=export_fn))


def test_an_interrupt_wrapped_by_an_sdk_is_an_interrupt(tmp_path, monkeypatch):
    def wrapped(req):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("exporter crashed") from exc  # what torch.export did with Ctrl-C

    _patched_onnx(monkeypatch, wrapped)
    with pytest.raises(KeyboardInterrupt):
        _export(output=tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_artifact_not_its_temporary_name(tmp_path, monkeypatch):
    from edgevit.errors import ExportError

    def failing(req):
        raise ExportError(f"cannot finish {req.output} ({Path(req.output).name})")

    _patched_onnx(monkeypatch, failing)
    with pytest.raises(ExportError) as info:
        _export(output=tmp_path / "named.onnx")
    assert "edgevit-tmp" not in str(info.value) and str(tmp_path / "named.onnx") in str(info.value)


def test_a_sidecar_of_another_model_says_so(toy, tmp_path):
    from edgevit.verify import verify

    art = tmp_path / "t.onnx"
    shutil.copy(toy.artifact, art)
    side = json.loads(toy.sidecar.read_text())
    side["model"] = "cas_vit_xs"
    (tmp_path / "t.onnx.json").write_text(json.dumps(side))
    with pytest.raises(VerificationError, match="names model 'cas_vit_xs', the artifact was exported from 'toy_vit'"):
        verify(art)


def test_onnx_runtime_writes_nothing_under_home_or_tmp(toy, tmp_path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env |= {"HOME": str(home), "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    code = ("import numpy as np, edgevit; from edgevit.backends import open_runner; "
            f"r = open_runner('onnxruntime', {str(toy.artifact)!r}); r.infer(np.zeros((1, 3, 64, 64), np.float32))")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    assert list(home.rglob("*")) == [] and list(tmp.rglob("*")) == []


def test_edgevit_errors_have_user_exit_codes():
    for cls in (ConfigError, CalibrationError, OutputError, VerificationError):
        assert issubclass(cls, EdgeVitError) and cls.exit_code in (1, 2)
