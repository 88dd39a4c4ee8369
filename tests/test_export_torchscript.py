"""TorchScript-mobile target: every family's tiny() traced, saved for the lite interpreter, loaded by
the lite interpreter here and compared with PyTorch; dynamic int8 (qnnpack) judged by cosine/top-1;
an official-checkpoint model (cas_vit_xs) conforms through the .ptl; failures leave no .ptl behind."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.cli import app
from edgevit.errors import ExportError, UnavailableError
from edgevit.backends import ExportRequest, get_backend
from edgevit.backends.torchscript.export import inspect_ptl, read_extra, xnnpack_available
from edgevit.backends import open_runner
from tests._families import FAMILIES, IMG, cosine_min, images, reference, tiny_deployed

TARGET = get_backend("torchscript")


def _export(model: nn.Module, out: Path, precision: str = "fp32", **options: object) -> dict:
    x = torch.from_numpy(images(1))
    req = ExportRequest(model_name="m", model=model, example=x, output=out, precision=precision,
                        img_size=int(x.shape[-1]), options=dict(options))
    res = TARGET.export(req)
    assert res.artifact == out and out.is_file()
    return res.metadata


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    with open_runner("torchscript-lite", path, threads=2) as r:
        return np.concatenate([r.infer(x[i : i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("family", FAMILIES)
def test_family_fp32_lite_interpreter_matches_pytorch(family, tmp_path):
    model = tiny_deployed(family)
    out = tmp_path / f"{family}.ptl"
    meta = _export(model, out)
    x = images(4)
    ref, got = reference(model, x), _run(out, x)
    scale = float(np.abs(ref).max())
    assert np.abs(got - ref).max() <= 1e-5 * scale + 1e-12, (family, np.abs(got - ref).max(), scale)
    assert (got.argmax(1) == ref.argmax(1)).all()
    # metadata inside the artifact and in the sidecar facts
    extra = read_extra(out)
    assert extra["img_size"] == IMG and extra["precision"] == "fp32" and len(extra["mean"]) == 3
    assert meta["bytecode_version"] >= 5 and "aten::_convolution" in meta["operators"]
    if not xnnpack_available():
        assert "no XNNPACK" in meta["mobile_optimization"]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_int8_dynamic_qnnpack(family, tmp_path):
    model = tiny_deployed(family, lively=True)
    out = tmp_path / f"{family}_int8.ptl"
    meta = _export(model, out, "int8")
    assert meta["qengine"] == ("qnnpack" if "qnnpack" in torch.backends.quantized.supported_engines else meta["qengine"])
    assert meta["quantized_linear_layers"] > 0 and 0 < meta["int8_weight_share"] <= 1
    assert "quantized::linear_dynamic" in meta["operators"]
    assert read_extra(out)["qengine"] == meta["qengine"]
    x = images(8)
    engine_before = torch.backends.quantized.engine
    ref, got = reference(model, x), _run(out, x)
    assert torch.backends.quantized.engine == engine_before  # the runner puts the process-wide engine back
    assert cosine_min(ref, got) >= 0.99, (family, cosine_min(ref, got))
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.75


def test_official_checkpoint_conforms_through_ptl(tmp_path):
    from edgevit.models import create_model
    from edgevit.rewrite import deploy
    from tests.conformance import CONFORMANCE_DIR, assert_conforms, official_state_dict, reference_input

    if not (CONFORMANCE_DIR / "weights.py").is_file():
        pytest.skip(f"conformance fixtures not found at {CONFORMANCE_DIR}")
    name = "cas_vit_xs"
    model = deploy(create_model(name, checkpoint=official_state_dict(name)).eval()).eval()
    x = reference_input(name, 1)
    req = ExportRequest(model_name=name, model=model, example=x, output=tmp_path / "xs.ptl",
                        img_size=int(x.shape[-1]))
    TARGET.export(req)
    with open_runner("torchscript-lite", tmp_path / "xs.ptl", threads=2) as r:
        assert_conforms(name, r.infer(x.numpy()))


class _PySwish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return x * torch.sigmoid(x)


class _Unsavable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PySwish.apply(self.conv(x)).mean((2, 3))


def test_failed_save_leaves_no_ptl(tmp_path):
    out = tmp_path / "bad.ptl"
    with pytest.raises(ExportError, match="lite interpreter"):
        _export(_Unsavable().eval(), out)
    assert not out.exists()


def test_int8_without_linear_layers_is_a_clear_error(tmp_path):
    out = tmp_path / "conv.ptl"
    with pytest.raises(ExportError, match="nn.Linear"):
        _export(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval(), out, "int8")
    assert not out.exists()


def test_unknown_quantized_engine_names_what_exists(tmp_path):
    with pytest.raises(UnavailableError, match="not in this torch build"):
        _export(tiny_deployed("cabvit"), tmp_path / "x.ptl", "int8", qengine="no_such_engine")
    assert not (tmp_path / "x.ptl").exists()


def test_inspect_reads_operators_and_metadata(tmp_path):
    out = tmp_path / "c.ptl"
    _export(tiny_deployed("cabvit"), out)
    info = inspect_ptl(out)
    assert info["operator_count"] == len(info["operators"]) > 3
    assert info["metadata"]["model"] == "m"


# ---------------------------------------------------------------------------------- CLI


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_cli_round_trip_export_then_verify(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["export", "toy_vit", "--target", "torchscript", "--int8", "--calib-samples", "8",
                              "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    art = tmp_path / "toy_vit_int8.ptl"
    side = json.loads((tmp_path / "toy_vit_int8.ptl.json").read_text())
    assert art.is_file() and side["target"] == "torchscript" and side["precision"] == "int8"
    assert side["verification"]["executed"] and side["verification"]["passed"]
    assert side["export"]["qengine"] and side["export"]["int8_scheme"].startswith("dynamic")
    res = runner.invoke(app, ["verify", str(art)])
    assert res.exit_code == 0, res.output
    assert "passed" in res.output
    assert not [p for p in tmp_path.iterdir() if "edgevit-tmp" in p.name]


def test_cli_unsupported_precision_is_one_line_and_leaves_nothing(tmp_path):
    res = CliRunner().invoke(app, ["export", "toy_vit", "--target", "torchscript", "--fp16", "-o", str(tmp_path)])
    assert res.exit_code == 2
    lines = _lines(res.output)
    assert len(lines) == 1 and "no fp16" in lines[0] and "fp32, int8" in lines[0], res.output
    assert list(tmp_path.iterdir()) == []
