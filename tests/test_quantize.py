"""Calibration data (folders, embedded photos, floor, split) and ORT static QDQ quantization on real files."""
from __future__ import annotations

import collections
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgevit.errors import CalibrationError, ConfigError
from edgevit.quantize import data as qdata

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _write_images(folder: Path, n: int, nested: bool = True) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        sub = folder / (f"class{i % 3}" if nested else "") / ("deeper" if nested and i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_folder_is_read_recursively_and_split_deterministically(tmp_path):
    _write_images(tmp_path, 45)
    (tmp_path / "notes.txt").write_text("not an image")
    a = qdata.from_folder(tmp_path, img_size=32, mean=MEAN, std=STD)
    b = qdata.from_folder(tmp_path, img_size=32, mean=MEAN, std=STD)
    assert a.calib.shape == (36, 3, 32, 32) and a.holdout.shape == (9, 3, 32, 32)
    np.testing.assert_array_equal(a.calib, b.calib)
    np.testing.assert_array_equal(a.holdout, b.holdout)
    assert a.distinct_images == 45
    # hold-out and calibration are disjoint images
    flat_c = {x.tobytes() for x in a.calib}
    assert not any(x.tobytes() in flat_c for x in a.holdout)


def test_normalisation_matches_mean_std(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(tmp_path / "white.png")
    x = qdata.normalize([qdata.read_image(tmp_path / "white.png")], MEAN, STD)
    np.testing.assert_allclose(x[0, :, 0, 0], (1 - np.array(MEAN)) / np.array(STD), rtol=1e-6)


def test_embedded_photos_are_honest_about_distinct_count():
    cs = qdata.from_embedded(img_size=32, mean=MEAN, std=STD)
    assert cs.calib.shape[0] == qdata.DEFAULT_CALIB_SAMPLES
    assert 5 <= cs.distinct_images < cs.calib.shape[0]
    assert "distinct photos" in cs.describe()["notes"][0]
    again = qdata.from_embedded(img_size=32, mean=MEAN, std=STD)
    np.testing.assert_array_equal(cs.calib, again.calib)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p, "no images"),  # empty folder
        (lambda p: (p / "a.txt").write_text("x") and p, "no images"),  # image-less
        (lambda p: p / "missing", "not found"),
    ],
)
def test_bad_folders_raise_calibration_error(tmp_path, make, match):
    folder = make(tmp_path)
    with pytest.raises(CalibrationError, match=match):
        qdata.from_folder(folder, img_size=32, mean=MEAN, std=STD)


def test_unreadable_image_is_named(tmp_path):
    _write_images(tmp_path, 40, nested=False)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(CalibrationError, match="broken.jpg"):
        qdata.from_folder(tmp_path, img_size=32, mean=MEAN, std=STD)


def test_calibration_floor_and_explicit_override(tmp_path):
    _write_images(tmp_path, 12, nested=False)
    with pytest.raises(CalibrationError, match=f"at least {qdata.CALIB_FLOOR}"):
        qdata.from_folder(tmp_path, img_size=32, mean=MEAN, std=STD)
    cs = qdata.from_folder(tmp_path, img_size=32, mean=MEAN, std=STD, samples=8)
    assert len(cs.calib) == 8 and any("floor" in n for n in cs.notes)


# ------------------------------------------------------------------------------------- quantization


@pytest.fixture(scope="module")
def toy_fp32(tmp_path_factory) -> Path:
    import tests._toy  # noqa: F401  registers toy_vit
    from edgevit.export import export

    out = tmp_path_factory.mktemp("q") / "toy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export("toy_vit", output=out, verify=False)
    return out


@pytest.fixture(scope="module")
def calib():
    return qdata.from_embedded(img_size=64, mean=MEAN, std=STD, samples=32)


def _consumers(model, tensor: str) -> list:
    return [n for n in model.graph.node if tensor in n.input]


def test_qdq_quantizes_only_conv_matmul_gemm_with_per_channel_weights(toy_fp32, calib, tmp_path):
    import onnx
    from onnx import numpy_helper

    from edgevit.backends.onnx.quantize import quantize_onnx

    out = tmp_path / "int8.onnx"
    rep = quantize_onnx(toy_fp32, out, calib, preset="x86")
    m = onnx.load(str(out))
    ops = collections.Counter(n.op_type for n in m.graph.node)
    fp = collections.Counter(n.op_type for n in onnx.load(str(toy_fp32)).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    # LayerNorm, Softmax, GELU and the residual Adds stay float ops (nothing replaced or removed)
    for op in ("LayerNormalization", "Softmax", "Gelu", "Erf", "Add"):
        assert ops[op] == fp[op], op
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    consumers = collections.defaultdict(list)
    for n in m.graph.node:
        for i in n.input:
            consumers[i].append(n.op_type)
    weight_dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weight_dq, "weights are stored int8"
    for n in weight_dq:  # int8 weights feed only the quantized op types
        assert set(consumers[n.output[0]]) <= {"Conv", "MatMul", "Gemm"}, consumers[n.output[0]]
    # per-channel: weight scales are vectors
    assert any(inits[n.input[1]].size > 1 for n in weight_dq)
    # Add/Mul/Sigmoid are candidates of the measured selection, float under the static rules
    assert rep.calibration_images == 32 and rep.op_types == ["Conv", "MatMul", "Gemm", "Add", "Mul", "Sigmoid"]


def test_elementwise_candidates_are_float_statically_and_run_as_qlinear_ops_when_chosen(calib, tmp_path):
    """On the x86 preset an Add between convs is a candidate the static rules keep float; a variant that
    takes it int8 gives ONNX Runtime a DQ -> Add -> Q it fuses into QLinearAdd."""
    import onnx
    import onnxruntime as ort
    import torch
    from torch import nn

    from edgevit.backends.onnx.quantize import prepare_onnx, write_variant

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 1), nn.Conv2d(16, 8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            return self.c(y + self.b(y) * torch.sigmoid(y))

    fp32 = tmp_path / "ew.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Net().eval(), (torch.randn(1, 3, 64, 64),), str(fp32), input_names=["input"],
                          dynamo=True, verbose=False)
    prep = prepare_onnx(fp32, tmp_path, calib, preset="x86")
    kinds = {name: kind for name, kind, _ in prep.candidates}
    elementwise = {n for n, k in kinds.items() if k in ("Add", "Mul", "Sigmoid")}
    assert {kinds[n] for n in elementwise} == {"Add", "Mul", "Sigmoid"} and elementwise <= set(prep.static_exclude)
    add = next(n for n in elementwise if kinds[n] == "Add")

    def ort_ops(path: Path) -> set[str]:  # the op types ONNX Runtime runs after its graph optimisations
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return {n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node}

    assert "QLinearAdd" not in ort_ops(prep.static_variant) and "QLinearConv" in ort_ops(prep.static_variant)
    variant = tmp_path / "with_add.onnx"
    write_variant(prep, set(prep.static_exclude) - {add}, variant)
    assert "QLinearAdd" in ort_ops(variant)


def test_tensorrt_preset_is_symmetric_s8_without_ort_ops(toy_fp32, calib, tmp_path):
    import onnx
    from onnx import TensorProto, numpy_helper

    from edgevit.backends.onnx.quantize import quantize_onnx

    out = tmp_path / "trt.onnx"
    quantize_onnx(toy_fp32, out, calib, preset="tensorrt")
    m = onnx.load(str(out))
    assert all(n.domain in ("", "ai.onnx") for n in m.graph.node), "TensorRT cannot parse ORT contrib ops"
    inits = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear":
            zp = inits[n.input[2]]
            assert zp.data_type == TensorProto.INT8
            assert not numpy_helper.to_array(zp).any(), "symmetric: zero point 0"


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_methods_produce_runnable_models(toy_fp32, calib, tmp_path, method):
    import onnxruntime as ort

    from edgevit.backends.onnx.quantize import quantize_onnx

    out = tmp_path / f"{method}.onnx"
    quantize_onnx(toy_fp32, out, calib, method=method)
    y = ort.InferenceSession(str(out)).run(None, {"input": calib.holdout[:1]})[0]
    assert y.shape == (1, 10) and np.isfinite(y).all()


def test_unknown_method_and_preset_are_config_errors(toy_fp32, calib, tmp_path):
    from edgevit.backends.onnx.quantize import quantize_onnx

    with pytest.raises(ConfigError):
        quantize_onnx(toy_fp32, tmp_path / "x.onnx", calib, method="kl")
    with pytest.raises(ConfigError):
        quantize_onnx(toy_fp32, tmp_path / "x.onnx", calib, preset="riscv")


def test_cpu_presets_keep_projection_outputs_and_attention_matmuls_float(toy_fp32, calib, tmp_path):
    """x86/arm64: MatMul/Gemm write float (ORT's QGemm / MatMulIntegerToFloat; no requantize + DQ pass
    before the float LayerNorm/GELU/Add that follows), and activation x activation MatMuls stay float."""
    import onnx

    from edgevit.backends.onnx.quantize import quantize_onnx

    for preset in ("x86", "arm64"):
        out = tmp_path / f"{preset}.onnx"
        quantize_onnx(toy_fp32, out, calib, preset=preset)
        m = onnx.load(str(out))
        inits = {t.name for t in m.graph.initializer}
        producer = {o: n for n in m.graph.node for o in n.output}
        for n in m.graph.node:
            if n.op_type in ("MatMul", "Gemm"):
                assert not any(c.op_type == "QuantizeLinear" for c in _consumers(m, n.output[0])), (preset, n.name)
                fed = [producer.get(i) for i in n.input[:2]]
                weight = any(f is not None and f.op_type == "DequantizeLinear" and f.input[0] in inits for f in fed)
                if not weight:  # attention's q @ k^T and attn @ v: no int8 input at all
                    assert not any(f is not None and f.op_type == "DequantizeLinear" for f in fed), (preset, n.name)
        assert any(n.op_type == "DequantizeLinear" for n in m.graph.node)


def test_x86_preset_keeps_depthwise_convs_float(calib, tmp_path):
    import onnx
    import torch
    from torch import nn

    from edgevit.backends.onnx.quantize import depthwise_convs, quantize_onnx

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                        nn.Conv2d(8, 4, 1)).eval()
    fp32 = tmp_path / "dw.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(1, 3, 64, 64),), str(fp32), input_names=["input"], dynamo=True,
                          verbose=False)
    model = onnx.load(str(fp32))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert depthwise_convs(model) == [convs[1].name]
    out = tmp_path / "dw_int8.onnx"
    rep = quantize_onnx(fp32, out, calib, preset="x86")
    assert rep.excluded_nodes == 1 and rep.quantized_nodes == 2
    m = onnx.load(str(out))
    producer = {o: n for n in m.graph.node for o in n.output}
    dw = next(n for n in m.graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i == 8 for a in n.attribute))
    assert dw.input[1] not in producer, "depthwise weights stay a float initializer"
    dense = [n for n in m.graph.node if n.op_type == "Conv" and n is not dw]
    assert all(producer[n.input[1]].op_type == "DequantizeLinear" for n in dense)
