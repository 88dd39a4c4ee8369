"""ncnn target: every family's deploy form converts through pnnx and matches PyTorch in ncnn (fp32),
fp16 storage stays close, pnnx leftovers fail loudly, and the pipeline writes a `NAME.ncnn/` artifact."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("ncnn")
pytest.importorskip("pnnx")

from edgevit.errors import ExportError  # noqa: E402
from edgevit.backends.ncnn.export import export_ncnn
from edgevit.backends.ncnn.param import inspect_ncnn, layer_histogram  # noqa: E402
from edgevit.backends import ExportRequest, get_backend  # noqa: E402
from edgevit.rewrite import deploy  # noqa: E402
from edgevit.backends import open_runner  # noqa: E402
from edgevit.verify import compare, judge  # noqa: E402

FAMILIES = ["fcaformer", "cabvit", "casvit", "stvit"]


def _tiny(family: str) -> nn.Module:
    torch.manual_seed(0)
    return deploy(importlib.import_module(f"edgevit.models.{family}").tiny(num_classes=10, img_size=64))


def _export(model: nn.Module, out: Path, precision: str = "fp32") -> Path:
    x = torch.randn(1, 3, 64, 64)
    req = ExportRequest(model_name="t", model=model, example=x, output=out, precision=precision, img_size=64)
    return export_ncnn(req).artifact


@pytest.mark.parametrize("family", FAMILIES)
def test_family_fp32_matches_pytorch(family: str, tmp_out: Path) -> None:
    model = _tiny(family)
    art = _export(model, tmp_out / f"{family}.ncnn")
    assert sorted(p.name for p in art.iterdir()) == ["model.bin", "model.json", "model.param"]
    x = torch.randn(3, 3, 64, 64)  # batch 3: the runner loops over rows (ncnn has no batch axis)
    with torch.no_grad():
        ref = model(x).numpy()
    with open_runner("ncnn", art, threads=2) as runner:
        out = runner.infer(x.numpy())
    rep = compare(ref, out)
    assert not judge(rep, "fp32", judge_top1=False), (family, rep)
    # no pnnx op names survived conversion; every layer is an ncnn layer
    assert all("." not in kind for kind in layer_histogram(art))


@pytest.mark.parametrize("family", FAMILIES)
def test_linears_become_single_gemms(family: str, tmp_out: Path) -> None:
    """No Linear of a deploy form runs on a 4-D blob: pnnx would wrap it in Reshape -> Gemm -> Reshape,
    and with ncnn's packed layout each of those reshapes repacks the blob (fcaformer_l1: 182 vs 45 ms)."""
    art = _export(_tiny(family), tmp_out / f"{family}.ncnn")
    names = [line.split()[1] for line in (art / "model.param").read_text().splitlines()[2:] if line.strip()]
    assert not [n for n in names if "ncnnreshape" in n]


def test_fp16_storage_is_close(tmp_out: Path) -> None:
    model = _tiny("casvit")
    art = _export(model, tmp_out / "c16.ncnn", "fp16")
    fp32 = _export(model, tmp_out / "c32.ncnn", "fp32")
    assert (art / "model.bin").stat().st_size < 0.6 * (fp32 / "model.bin").stat().st_size
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).numpy()
    with open_runner("ncnn", art, threads=1) as runner:
        out = runner.infer(x.numpy())
    assert not judge(compare(ref, out), "fp16", judge_top1=False)
    assert json.loads((art / "model.json").read_text())["precision"] == "fp16"


def test_inspect_histogram(tmp_out: Path) -> None:
    art = _export(_tiny("cabvit"), tmp_out / "i.ncnn")
    info = inspect_ncnn(art)
    assert info["layers"] == sum(info["layer_histogram"].values())
    assert info["inputs"] == {"in0": [1, 3, 64, 64]}
    assert {"Convolution", "LayerNorm", "Softmax"} <= set(info["layer_histogram"])


class _Rank5Attention(nn.Module):
    """The classic ViT q/k/v split through a rank-5 reshape that pnnx cannot express in ncnn."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        t = x.flatten(2).transpose(1, 2)
        n = t.shape[1]
        q, k, v = self.qkv(t).reshape(b, n, 3, 4, 4).permute(2, 0, 3, 1, 4)
        return ((q @ k.transpose(-2, -1)).softmax(-1) @ v).mean((1, 2))


def test_rank5_reshape_fails_loudly(tmp_out: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 8, 8), _Rank5Attention()).eval()
    with pytest.raises(ExportError, match="Rank-5|rank"):
        _export(model, tmp_out / "r5.ncnn")


def test_targets_row() -> None:
    t = get_backend("ncnn")
    assert t.precisions == ("fp32", "fp16", "int8") and "ncnn2table" in t.int8
    assert t.runtime.key == "ncnn" and t.suffix == ".ncnn" and not t.dynamic_batch


def test_pipeline_writes_directory_artifact(tmp_out: Path) -> None:
    """edgevit.export: temp directory renamed into place, sidecar beside it, verified in ncnn."""
    from tests import _toy  # noqa: F401  registers toy_vit
    from edgevit.export import export

    out = tmp_out / "toy.ncnn"
    for _ in range(2):  # a second export replaces the first directory
        with pytest.warns(Warning):
            rep = export("toy_vit", target="ncnn", precision="fp32", output=out, img_size=64)
    assert rep.artifact == out and out.is_dir() and (out / "model.param").is_file()
    assert rep.verification is not None and rep.verification.passed, rep.verification
    side = json.loads((tmp_out / "toy.ncnn.json").read_text())
    assert side["target"] == "ncnn" and side["export"]["layer_histogram"]
    assert not [p for p in tmp_out.iterdir() if "edgevit-tmp" in p.name]
    np.testing.assert_equal(side["export"]["input_shape"], [3, 64, 64])
