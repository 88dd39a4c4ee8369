"""`edgevit export` / `edgevit verify` round trip, and every bad input: one-line error, non-zero exit,
nothing left in the output folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app

runner = CliRunner()


def _err(result) -> str:
    return getattr(result, "stderr", "") or result.output


def test_export_then_verify_round_trip(tmp_out):
    res = runner.invoke(app, ["export", "toy_vit", "-o", str(tmp_out / "toy.onnx"), "--dynamic-batch"])
    assert res.exit_code == 0, _err(res)
    assert "weights are seeded" in _err(res)
    assert "passed" in res.output and "cosine" in res.output
    assert sorted(p.name for p in tmp_out.iterdir()) == ["toy.onnx", "toy.onnx.json"]
    res = runner.invoke(app, ["verify", str(tmp_out / "toy.onnx")])
    assert res.exit_code == 0, _err(res)
    assert "passed" in res.output and "batch 3 runs" in res.output
    side = json.loads((tmp_out / "toy.onnx.json").read_text())
    assert side["verification"]["passed"]


@pytest.mark.parametrize("given", ["new/", "new"])
def test_output_folder_that_does_not_exist_yet(tmp_path, given, monkeypatch):
    """The README's `-o out/` on a fresh machine: a trailing slash, or a name without suffix, is a folder."""
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["export", "toy_vit", "-o", given])
    assert res.exit_code == 0, _err(res)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["toy_vit_fp32.onnx", "toy_vit_fp32.onnx.json"]


def test_export_with_checkpoint_and_calibration_folder(tmp_out, tmp_path):
    from PIL import Image

    from edgevit.models import build_reference

    model = build_reference("toy_vit", seed=7)
    ckpt = tmp_path / "toy.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (72, 80, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    # --int8-force: the question is where the calibration images come from, not whether int8 pays here
    res = runner.invoke(app, ["export", "toy_vit", "--checkpoint", str(ckpt), "--int8", "--int8-force", "--calib-data",
                              str(tmp_path / "photos"), "-o", str(tmp_out)])
    assert res.exit_code == 0, _err(res)
    assert "seeded" not in _err(res)
    side = json.loads((tmp_out / "toy_vit_int8.onnx.json").read_text())
    assert side["weights"]["checkpoint"] == str(ckpt.resolve()) and len(side["weights"]["checkpoint_sha256"]) == 64
    assert side["calibration"]["calibration_images"] == 32 and side["calibration"]["holdout_images"] == 8


@pytest.fixture
def bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3, 3, 3)}}, other)
    empty = tmp_path / "empty"
    empty.mkdir()
    noimg = tmp_path / "noimg"
    noimg.mkdir()
    (noimg / "readme.txt").write_text("no images here")
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(40):
        (broken / f"{i}.jpg").write_bytes(b"\xff\xd8garbage")
    from PIL import Image

    few = tmp_path / "few"
    few.mkdir()
    for i in range(5):
        Image.fromarray(np.full((40, 40, 3), i * 40, np.uint8)).save(few / f"{i}.png")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    return {"corrupt": corrupt, "other": other, "empty": empty, "noimg": noimg, "broken": broken,
            "blocker": blocker, "few": few, "missing": tmp_path / "missing.pth"}


CASES = {
    "unknown model": (["export", "toy_vitt"], "did you mean"),
    "missing checkpoint": (["export", "toy_vit", "--checkpoint", "{missing}"], "not found"),
    "corrupt checkpoint": (["export", "toy_vit", "--checkpoint", "{corrupt}"], "cannot read checkpoint"),
    "checkpoint of another model": (["export", "toy_vit", "--checkpoint", "{other}"], "does not fit"),
    "empty calibration folder": (["export", "toy_vit", "--int8", "--calib-data", "{empty}"], "no images"),
    "image-less calibration folder": (["export", "toy_vit", "--int8", "--calib-data", "{noimg}"], "no images"),
    "unreadable images": (["export", "toy_vit", "--int8", "--calib-data", "{broken}"], "cannot read image"),
    "too few calibration images": (["export", "toy_vit", "--int8", "--calib-data", "{few}"], "at least"),
    "unwritable output": (["export", "toy_vit", "-o", "{blocker}/sub/x.onnx"], "cannot write"),
    "invalid img size": (["export", "toy_vit", "--img-size", "33"], "img-size"),
    "invalid batch": (["export", "toy_vit", "--batch", "0"], "batch"),
    "fp16 and int8": (["export", "toy_vit", "--fp16", "--int8"], "one of"),
    "unknown preset": (["export", "toy_vit", "--int8", "--preset", "riscv"], "preset"),
    "verify missing artifact": (["verify", "{missing}"], "not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_error_nothing_left(case, bad_files, tmp_out, monkeypatch):
    args, match = CASES[case]
    args = [a.format(**bad_files) for a in args]
    if args[0] == "export" and "-o" not in args:
        args += ["-o", str(tmp_out / "x.onnx")]
    monkeypatch.chdir(tmp_out)
    res = runner.invoke(app, args)
    err = _err(res).strip()
    assert res.exit_code != 0
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err  # one error line, and it comes last
    assert match in errors[0], err
    assert "Traceback" not in err
    assert list(tmp_out.iterdir()) == []
