"""ncnn int8 written by edgevit: the .bin layout round-trips, scales are sane, ncnn really runs every layer
edgevit marks int8 (its output equals int8 arithmetic on our scales and differs from the float layer),
the whole net stays close to fp32, the accuracy loop returns layers to float, and the pipeline writes
a verified `NAME.ncnn/` int8 artifact."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("ncnn")
pytest.importorskip("pnnx")

from edgevit.backends import ExportRequest, open_runner
from edgevit.backends.ncnn import quantize as q
from edgevit.backends.ncnn.export import export_ncnn
from edgevit.backends.ncnn.format import (
    TAG_INT8,
    NcnnFormatError,
    read_bin,
    read_param,
    write_bin,
)
from edgevit.backends.ncnn.param import inspect_ncnn
from edgevit.errors import ConfigError
from edgevit.quantize.data import from_embedded

SIZE = 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Tiny(nn.Module):
    """One layer of each type ncnn runs in int8: Convolution, ConvolutionDepthWise, Gemm (Linear on
    tokens) and InnerProduct (the head), with float GELU, residual add and mean between them."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.fc1, self.fc2, self.head = nn.Linear(16, 32), nn.Linear(32, 16), nn.Linear(16, 10)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dw(self.act(self.stem(x))))
        t = x.flatten(2).transpose(1, 2)
        t = t + self.fc2(self.act(self.fc1(t)))
        return self.head(t.mean(1))


@pytest.fixture(scope="module")
def calib() -> tuple[np.ndarray, np.ndarray]:
    cs = from_embedded(img_size=SIZE, mean=MEAN, std=STD, samples=32, holdout=8)
    return cs.calib, cs.holdout


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ncnn") / "tiny.ncnn"
    req = ExportRequest(model_name="t", model=_Tiny().eval(), example=torch.randn(1, 3, SIZE, SIZE), output=out,
                        img_size=SIZE)
    return export_ncnn(req).artifact


def _pair(art: Path) -> tuple[str, bytes]:
    return (art / "model.param").read_text(), (art / "model.bin").read_bytes()


def _quantize(fp32: Path, calib: tuple[np.ndarray, np.ndarray], **kw: object) -> tuple[str, bytes, q.Int8Report]:
    text, data = _pair(fp32)
    kw.setdefault("cosine_budget", 0.0)
    return q.quantize_ncnn(text, data, calib[0], calib[1], input_name="in0", output_name="out0", threads=1, **kw)


@pytest.fixture(scope="module")
def int8(fp32: Path, calib: tuple[np.ndarray, np.ndarray]) -> tuple[str, bytes, q.Int8Report]:
    return _quantize(fp32, calib)


# ------------------------------------------------------------------------------------------ format


def test_bin_layout_round_trips(fp32: Path, int8: tuple[str, bytes, q.Int8Report]) -> None:
    """Reading a .bin into per-layer arrays and writing it back gives the same bytes (fp32 and int8)."""
    for text, data in (_pair(fp32), int8[:2]):
        param = read_param(text)
        assert write_bin(param, read_bin(param, data)) == data
        assert read_param(param.text()).text() == param.text()


def test_unknown_weights_fail_loudly(fp32: Path) -> None:
    """A .bin with bytes no layer reads (an unknown weighted layer type) is an error, not a silent shift."""
    text, data = _pair(fp32)
    with pytest.raises(NcnnFormatError, match="read"):
        read_bin(read_param(text), data + b"\0" * 16)
    with pytest.raises(NcnnFormatError):
        read_bin(read_param(text), data[:-8])


def test_int8_layers_scales_and_storage(int8: tuple[str, bytes, q.Int8Report]) -> None:
    """Every candidate is int8 in the .param, stores int8 weights (tag 0x000D4B38) and positive finite scales."""
    text, data, rep = int8
    param = read_param(text)
    arrays = read_bin(param, data)
    kinds = {ly.kind: ly for ly in param.layers if ly.name in rep.int8_layers}
    assert set(kinds) == {"Convolution", "ConvolutionDepthWise", "Gemm", "InnerProduct"}
    for ly in kinds.values():
        term = ly.int(18 if ly.kind == "Gemm" else 8)
        assert term in (1, 2), ly.line()
        by = {a.name: a for a in arrays[ly.name]}
        weight = by["B" if ly.kind == "Gemm" else "weight"]
        assert weight.tag == TAG_INT8 and weight.values().dtype == np.int8
        assert np.abs(weight.values()).max() == 127  # symmetric scale from max|w|
        scales = [a.values() for n, a in by.items() if "scale" in n]
        assert scales and all(np.isfinite(s).all() and (s > 0).all() for s in scales), ly.name
    conv = {a.name: a for a in arrays[kinds["Convolution"].name]}
    assert conv["weight_int8_scales"].count == kinds["Convolution"].int(0)  # per output channel


def test_float_layers_untouched(fp32: Path, int8: tuple[str, bytes, q.Int8Report]) -> None:
    """Layers left float keep their .param line and their arrays byte for byte."""
    fp_param, q_param = read_param(_pair(fp32)[0]), read_param(int8[0])
    fp_arrays, q_arrays = read_bin(fp_param, _pair(fp32)[1]), read_bin(q_param, int8[1])
    for a, b in zip(fp_param.layers, q_param.layers):
        assert a.name == b.name
        if b.name not in int8[2].int8_layers:
            assert a.line() == b.line()
            assert [x.raw for x in fp_arrays.get(a.name, [])] == [x.raw for x in q_arrays.get(b.name, [])]


# ------------------------------------------------------------------------------------------ ncnn runs it


def _simulate(layer_kind: str, ly: object, by: dict, x: np.ndarray) -> np.ndarray:
    """The int8 arithmetic ncnn's layer is meant to do, computed exactly in float64 from our scales."""
    qx_round = lambda v: np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -127, 127)
    if layer_kind == "Gemm":
        a = x.reshape(-1, ly.int(9)).astype(np.float64)
        sa = 127.0 / np.abs(a).max(1)
        qa = qx_round(a * sa[:, None])
        qb = by["B"].values().reshape(ly.int(8), ly.int(9)).astype(np.float64)
        sb = float(by["B_int8_scale"].values()[0])
        return (qa @ qb.T) / (sa[:, None] * sb) + by["C"].values()
    s_in = float(by["bottom_int8_scale"].values()[0])
    sw = by["weight_int8_scales"].values().astype(np.float64)
    qx = qx_round(x.astype(np.float64) * s_in)
    bias = by["bias"].values().astype(np.float64)
    if layer_kind == "InnerProduct":
        qw = by["weight"].values().reshape(ly.int(0), -1).astype(np.float64)
        return (qw @ qx.reshape(-1)) / (s_in * sw) + bias
    groups = ly.int(7, 1) if layer_kind == "ConvolutionDepthWise" else 1
    out_c, cin = ly.int(0), x.shape[0]
    k, stride, pad = ly.int(1), ly.int(3, 1), ly.int(4)
    qw = torch.from_numpy(by["weight"].values().reshape(out_c, cin // groups, k, k).astype(np.float64))
    acc = F.conv2d(torch.from_numpy(qx)[None], qw, stride=stride, padding=pad, groups=groups)[0].numpy()
    per_out = sw if groups == 1 else np.repeat(sw, out_c // groups)
    return acc / (s_in * per_out[:, None, None]) + bias[:, None, None]


@pytest.mark.parametrize("kind", ["Convolution", "ConvolutionDepthWise", "Gemm", "InnerProduct"])
def test_ncnn_runs_marked_layer_in_int8(kind: str, fp32: Path, calib: tuple[np.ndarray, np.ndarray],
                                       int8: tuple[str, bytes, q.Int8Report]) -> None:
    """Quantize only one layer; ncnn's output of that layer equals int8 arithmetic on the scales we wrote
    (to float rounding) and differs from the float layer by a quantization-sized amount, not 0."""
    param = read_param(int8[0])
    target = next(ly for ly in param.layers if ly.kind == kind and ly.name in int8[2].int8_layers)
    others = [ly.name for ly in param.layers if ly.name != target.name]
    text, data, rep = _quantize(fp32, calib, exclude=others)
    assert rep.int8_layers == [target.name]
    ly = read_param(text).layer(target.name)
    by = {a.name: a for a in read_bin(read_param(text), data)[ly.name]}
    x = calib[1][0]
    net8, net32 = q.NcnnNet(text, data, threads=1, light=False), q.NcnnNet(*_pair(fp32), threads=1, light=False)
    try:
        bottom, top8 = net8.run(x, "in0", [ly.bottoms[0], ly.tops[0]])
        bottom32, top32 = net32.run(x, "in0", [ly.bottoms[0], ly.tops[0]])
    finally:
        net8.close()
        net32.close()
    np.testing.assert_array_equal(bottom, bottom32)  # everything upstream is float
    sim = _simulate(kind, ly, by, bottom).reshape(top8.shape)
    err_sim = np.abs(top8 - sim).max()
    err_fp32 = np.abs(top8 - top32).max()
    scale = np.abs(top32).max()
    assert err_fp32 > 0, f"{kind}: int8 output identical to float: the int8 kernel did not run"
    assert err_fp32 < 0.05 * scale, (kind, err_fp32, scale)  # quantization-sized
    assert err_sim < 0.2 * err_fp32 and err_sim < 1e-3 * scale, (kind, err_sim, err_fp32, scale)


def test_whole_net_close_to_fp32(fp32: Path, calib: tuple[np.ndarray, np.ndarray],
                                 int8: tuple[str, bytes, q.Int8Report], tmp_path: Path) -> None:
    """The int8 net through edgevit's runner: cosine to the fp32 net >= 0.99, outputs not identical."""
    text, data, rep = int8
    art = tmp_path / "tiny_int8.ncnn"
    art.mkdir()
    (art / "model.param").write_text(text)
    (art / "model.bin").write_bytes(data)
    manifest = json.loads((fp32 / "model.json").read_text())
    (art / "model.json").write_text(json.dumps({**manifest, "precision": "int8"}))
    x = calib[1]
    with open_runner("ncnn", fp32, threads=1) as r32, open_runner("ncnn", art, threads=1) as r8:
        ref, out = r32.infer(x), r8.infer(x)
    cos = np.sum(ref * out, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1))
    assert cos.min() >= 0.99 and np.abs(ref - out).max() > 0, cos
    assert rep.cosine_min_vs_fp32 >= 0.99 and abs(rep.cosine_vs_fp32 - cos.mean()) < 1e-3
    assert (art / "model.bin").stat().st_size < 0.5 * (fp32 / "model.bin").stat().st_size
    assert inspect_ncnn(art)["int8_layers"] == len(rep.int8_layers) == 5


def test_accuracy_loop_returns_layers_to_float(fp32: Path, calib: tuple[np.ndarray, np.ndarray]) -> None:
    """A budget int8 cannot meet sends the layers whose return gains most back to float, recorded as such."""
    text, _, rep = _quantize(fp32, calib, cosine_budget=0.999999999)
    assert rep.reverted and set(rep.reverted).isdisjoint(rep.int8_layers)
    param = read_param(text)
    for name in rep.reverted:
        ly = param.layer(name)
        assert ly.int(18 if ly.kind == "Gemm" else 8) == 0
        assert next(d for d in rep.layers if d.name == name).int8 is False
    base = _quantize(fp32, calib)[2]
    assert rep.cosine_vs_fp32 >= base.cosine_vs_fp32


def test_keep_float_option_and_errors(fp32: Path, calib: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    for f in ("model.param", "model.bin"):
        (work / f).write_bytes((fp32 / f).read_bytes())
    kw = {"input_name": "in0", "output_name": "out0", "method": "minmax", "threads": 1}
    with pytest.raises(ConfigError, match="no layer or layer type named nope"):
        q.quantize_in_place(work / "model.param", work / "model.bin", *calib, options={"int8_keep_float": "nope"}, **kw)
    with pytest.raises(ConfigError, match="int8_cosine"):
        q.quantize_in_place(work / "model.param", work / "model.bin", *calib, options={"int8_cosine": "x"}, **kw)
    rep = q.quantize_in_place(work / "model.param", work / "model.bin", *calib,
                              options={"int8_keep_float": "Gemm", "int8_cosine": "0"}, **kw)
    assert {d.kind for d in rep.layers if not d.int8} == {"Gemm"} and len(rep.int8_layers) == 3
    assert "Gemm 0/2" in q.summary_line(rep)


@pytest.mark.parametrize("method", q.CALIB_METHODS)
def test_calibration_methods(method: str, fp32: Path, calib: tuple[np.ndarray, np.ndarray]) -> None:
    """minmax, percentile and entropy (KL) all give a working net; clipping methods never exceed max|x|."""
    rep = _quantize(fp32, calib, method=method)[2]
    assert rep.cosine_min_vs_fp32 >= 0.98
    static = [d for d in rep.layers if d.activation == "static"]
    assert static and all(d.threshold and d.bottom_scale and np.isclose(d.bottom_scale * d.threshold, 127.0)
                          for d in static)


def test_kl_threshold_clips_a_long_tail() -> None:
    """KL keeps the bulk of a Gaussian and clips a lone far outlier; a uniform range is kept whole."""
    rng = np.random.default_rng(0)
    v = np.abs(np.concatenate([rng.standard_normal(200_000), [40.0]]))
    hist, _ = np.histogram(v, bins=q.HIST_BINS, range=(0, v.max()))
    t = q._kl_threshold(hist, v.max() / q.HIST_BINS)
    assert 3.0 < t < 20.0
    u = rng.uniform(0, 1, 200_000)
    hist, _ = np.histogram(u, bins=q.HIST_BINS, range=(0, 1))
    assert q._kl_threshold(hist, 1 / q.HIST_BINS) > 0.9


# ------------------------------------------------------------------------------------------ pipeline


def test_pipeline_int8_toy(tmp_out: Path) -> None:
    """edgevit.export --target ncnn --int8 on the toy ViT: verified artifact, model.json and sidecar record
    what runs int8, the runner loads it (use_int8_inference) and its outputs are not the fp32 ones."""
    from edgevit.export import export
    from tests import _toy  # noqa: F401  registers toy_vit

    with pytest.warns(Warning):
        rep = export("toy_vit", target="ncnn", precision="int8", output=tmp_out / "toy.ncnn", img_size=64,
                     calib_samples=32, threads=1)
    art = rep.artifact
    assert rep.verification is not None and rep.verification.passed
    manifest = json.loads((art / "model.json").read_text())
    meta = rep.record.export
    assert manifest["precision"] == "int8" and manifest["float_layers"] == "fp32"
    assert set(manifest["int8_layers"]) == {d["name"] for d in meta["int8"]["layers"] if d["int8"]}
    assert meta["int8_summary"].startswith("ncnn int8:") and meta["int8"]["int8_layer_count"] > 0
    assert rep.record.calibration["calibration_images"] == 32
    assert inspect_ncnn(art)["int8_layers"] == len(manifest["int8_layers"])
    assert not list(tmp_out.glob(".*edgevit-tmp*"))


def test_cli_export_int8_and_bench_a17_int8(tmp_out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`edgevit export --target ncnn --int8` prints what runs int8; `edgevit bench --device arm-a17 -p int8`
    measures an ncnn int8 artifact with ncnn (the profile's runtime), not an ONNX Runtime fallback."""
    from typer.testing import CliRunner

    from edgevit.cli import app
    from tests import _toy  # noqa: F401  registers toy_vit

    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    res = runner.invoke(app, ["export", "toy_vit", "--target", "ncnn", "--int8", "--calib-samples", "32",
                              "--threads", "1", "-o", str(tmp_out / "toy.ncnn")])
    assert res.exit_code == 0, res.output
    assert "ncnn int8: " in res.output and "int8 layers" in res.output and "passed" in res.output

    out = tmp_path / "bench.json"
    res = runner.invoke(app, ["bench", "toy_vit", "--device", "arm-a17", "-p", "int8", "--threads", "1",
                              "--runs", "5", "--warmup", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    (result,) = data["cases"]
    case = result["case"]
    assert result["ok"] and (case["runtime"], case["target"], case["precision"]) == ("ncnn", "ncnn", "int8")
    assert not data["setup"]["runtime_note"]  # no fallback
    art = Path(case["artifact"])
    assert json.loads((art / "model.json").read_text())["precision"] == "int8"
    assert inspect_ncnn(art)["int8_layers"] > 0
    # off the board, its layers were chosen by arm-a17's predicted costs, and the record says so
    from edgevit.artifact import read_record

    pred = read_record(art).export["int8"]["predicted"]
    assert pred["device"] == "arm-a17" and pred["whole_model"]["verdict"] in ("pays", "inconclusive")
    assert pred["costs"] and pred["unpriced"]


@pytest.mark.slow
def test_cas_vit_xs_int8_export_with_fixture_weights(tmp_out: Path) -> None:
    """`edgevit export cas_vit_xs --target ncnn --int8` with the conformance-fixture weights (non-degenerate):
    verified on the real photos at cosine >= 0.995 and full top-1 agreement, every conv/linear in int8."""
    from tests.conformance import official_state_dict

    try:
        state = official_state_dict("cas_vit_xs")
    except (OSError, KeyError) as exc:  # the fixtures live in ../shared, outside the package
        pytest.skip(f"no conformance fixture for cas_vit_xs: {type(exc).__name__}")
    ckpt = tmp_out / "cas_vit_xs_fixture.pt"
    torch.save(state, ckpt)
    from edgevit.export import export

    rep = export("cas_vit_xs", target="ncnn", precision="int8", checkpoint=ckpt, output=tmp_out / "c.ncnn", threads=1)
    v = rep.verification
    assert v is not None and v.passed and v.judged_top1
    out = v.outputs[0]
    assert out.cosine_min >= 0.995 and out.top1_agreement == 1.0, out
    hist = rep.record.export["int8"]["histogram"]
    assert hist["Convolution"]["float"] == 0 and hist["Convolution"]["int8"] > 50, hist
    assert inspect_ncnn(rep.artifact)["int8_layers"] == rep.record.export["int8"]["int8_layer_count"]


# ------------------------------------------------------------------------------------------ a device not at hand


def test_predicted_costs_price_convs_and_leave_unpriced_kernels_unguessed(fp32: Path) -> None:
    """arm-a17's predictor (fitted on the RK3288's ncnn tables) prices each conv in int8 and float from
    its fitted coefficients; Gemm/InnerProduct, which its int8 tables never ran, stay unpriced."""
    from edgevit.backends.ncnn.predicted import layer_costs
    from edgevit.bench.profiles import load_profile
    from edgevit.predict.api import choose_model

    text = (fp32 / "model.param").read_text()
    names = [ly.name for ly in read_param(text).layers if q.candidate_kind(ly)]
    pc = layer_costs(text, (3, SIZE, SIZE), "in0", names, device="arm-a17", threads=None)
    kinds = {ly.name: ly.kind for ly in read_param(text).layers}
    assert {kinds[n] for n in pc.costs} == {"Convolution", "ConvolutionDepthWise"}
    assert {kinds[n] for n in pc.unpriced} <= {"Gemm", "InnerProduct"} and pc.unpriced
    assert all("never ran this kernel class" in why for why in pc.unpriced.values())
    # the stem's price is its MACs times the fitted coefficients of the two board models
    profile = load_profile("arm-a17")
    fp32_model, _ = choose_model(profile, runtime="ncnn", threads=None, precision="fp32")
    stem = next(n for n in pc.costs if kinds[n] == "Convolution")
    term = next(t for t, classes in fp32_model.terms.items() if "conv3x3s2" in classes)
    macs = 16 * 3 * 9 * (SIZE // 2) ** 2 / 1e6
    assert pc.costs[stem].float_ms == pytest.approx(fp32_model.coef[term] * macs, rel=1e-6)
    assert pc.threads == profile.threads


def test_predicted_latency_keeps_float_where_int8_does_not_pay(fp32: Path, calib: tuple[np.ndarray, np.ndarray]) -> None:
    """With a device's prices, a layer whose int8 is predicted no cheaper stays float in the written net
    (its int8 flag off), with the figures in its reason; priced layers that pay and unpriced ones run int8."""
    from edgevit.backends.ncnn.predicted import PredictedCosts
    from edgevit.quantize.costs import NodeCost

    text = (fp32 / "model.param").read_text()
    layers = {ly.name: ly for ly in read_param(text).layers if q.candidate_kind(ly)}
    conv = next(n for n, ly in layers.items() if ly.kind == "Convolution")
    dw = next(n for n, ly in layers.items() if ly.kind == "ConvolutionDepthWise")
    prices = PredictedCosts("arm-a17", 4, "test prices", costs={conv: NodeCost(0.5, 2.0), dw: NodeCost(0.3, 0.1)},
                            unpriced={n: "no int8 price" for n in layers if n not in (conv, dw)})
    out, _, rep = _quantize(fp32, calib, predicted=prices)
    decided = {d.name: d for d in rep.layers}
    assert not decided[dw].int8 and decided[dw].reason.startswith("float: int8 does not pay on arm-a17")
    assert "int8 0.300 ms vs float 0.100 ms" in decided[dw].reason
    assert decided[conv].int8 and decided[conv].reason.startswith("int8: pays on arm-a17")
    assert all(decided[n].int8 for n in layers if n not in (conv, dw))
    assert read_param(out).layer(dw).int(8) == 0 and read_param(out).layer(conv).int(8) > 0
    assert rep.predicted["device"] == "arm-a17" and "float where int8 does not pay on arm-a17" in q.summary_line(rep)


def test_predicted_slower_refuses_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole-model prediction that is conclusively slower refuses the export; forced, it is recorded."""
    from edgevit.backends.ncnn import predicted
    from edgevit.errors import Int8NotFasterError

    verdict = {"fp32": {"predicted_ms": 10.0, "interval_ms": [9.0, 11.0]},
               "int8": {"predicted_ms": 20.0, "interval_ms": [18.0, 22.0]}, "verdict": "slower", "ratio": 0.5,
               "extrapolates": []}
    monkeypatch.setattr(predicted, "whole_model", lambda *a, **k: verdict)
    rep = q.Int8Report("minmax", 1, 1, 0.9, 1.0, 1.0, 1.0)
    with pytest.raises(Int8NotFasterError, match="int8 does not pay on arm-a17 by its latency predictor"):
        q._predicted_verdict(rep, "", "", np.zeros((1, 3, 8, 8)), "in0", "arm-a17", force=False)
    q._predicted_verdict(rep, "", "", np.zeros((1, 3, 8, 8)), "in0", "arm-a17", force=True)
    assert rep.predicted["whole_model"]["verdict"] == "slower" and "0.50x fp32" in rep.notes[-1]
