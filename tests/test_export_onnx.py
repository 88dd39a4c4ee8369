"""The onnx target through the public pipeline: files opened by ORT, numbers vs PyTorch, sidecar,
metadata, dynamic batch really dynamic, nothing left behind."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.errors import ConfigError, ExportError
from edgevit.export import RandomWeightsWarning, export
from edgevit.models import build_reference


def _export(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return export("toy_vit", **kw)


@pytest.fixture(scope="module")
def dyn(tmp_path_factory):
    out = tmp_path_factory.mktemp("e") / "toy_dyn.onnx"
    return _export(output=out, dynamic_batch=True)


def test_fp32_dynamic_matches_pytorch_at_batch_3(dyn):
    import onnxruntime as ort

    from edgevit.quantize.data import embedded_eval_images

    model = build_reference("toy_vit")
    x = embedded_eval_images(64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))[:3]
    sess = ort.InferenceSession(str(dyn.artifact))
    assert sess.get_inputs()[0].shape[0] == "batch"
    y = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert y.shape == (3, 10)
    assert np.abs(y - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    assert dyn.verification.dynamic_batch_check.startswith("ok")


def test_sidecar_and_metadata_record_preprocessing_and_provenance(dyn):
    import onnx

    from edgevit.artifact import artifact_sha256

    side = json.loads(dyn.sidecar.read_text())
    assert side["model"] == "toy_vit" and side["target"] == "onnx" and side["precision"] == "fp32"
    assert side["img_size"] == 64 and side["dynamic_batch"] is True
    assert side["input"]["mean"] == [0.485, 0.456, 0.406]
    assert side["sha256"] == artifact_sha256(dyn.artifact) and side["schema"] == "edgevit.artifact/2"
    assert side["weights"]["kind"] == "seeded" and side["weights"]["seed"] == 0
    assert side["weights"]["init"] == "seeded-v1" and len(side["weights"]["state_sha256"]) == 64
    assert side["params"] > 0 and side["macs"] > 0 and side["size_bytes"] == dyn.artifact.stat().st_size
    assert any("seeded" in w for w in side["warnings"])
    assert {"edgevit", "torch", "onnxruntime"} <= set(side["versions"])
    assert side["verification"]["passed"] and side["verification"]["executed"]
    meta = {p.key: p.value for p in onnx.load(str(dyn.artifact)).metadata_props}
    assert meta["img_size"] == "64" and meta["batch"] == "dynamic" and meta["model"] == "toy_vit"
    assert meta["mean"] == "0.485,0.456,0.406" and meta["std"] == "0.229,0.224,0.225"
    leftovers = [p.name for p in dyn.artifact.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_random_weights_warn_loudly(tmp_out):
    with pytest.warns(RandomWeightsWarning, match="accuracy means nothing"):
        export("toy_vit", output=tmp_out / "t.onnx", verify=False)


def test_fixed_batch_and_torchscript_exporter(tmp_out):
    rep = _export(output=tmp_out / "b2.onnx", batch=2, options={"exporter": "torchscript"})
    assert rep.verification.passed
    assert rep.verification.inspection["inputs"]["input"] == [2, 3, 64, 64]
    assert rep.record.export["exporter"] == "torchscript"


def test_fp16_keeps_float32_io_and_layernorm(tmp_out):
    import onnx
    from onnx import TensorProto

    rep = _export(output=tmp_out / "h.onnx", precision="fp16")
    assert rep.verification.passed, rep.verification.reason
    m = onnx.load(str(rep.artifact))
    assert m.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    fp16_inits = [t for t in m.graph.initializer if t.data_type == TensorProto.FLOAT16]
    assert fp16_inits, "weights are stored in fp16"
    ln_inputs = {i for n in m.graph.node if n.op_type == "LayerNormalization" for i in n.input[1:]}
    inits = {t.name: t for t in m.graph.initializer}
    assert all(inits[i].data_type == TensorProto.FLOAT for i in ln_inputs if i in inits)


def test_int8_export_verifies_by_cosine(tmp_out):
    # int8_force: this test is about verification; whether int8 pays is tests/test_int8_select.py's
    rep = _export(output=tmp_out / "q.onnx", precision="int8", calib_samples=32, int8_force=True)
    v = rep.verification
    assert v.executed and v.passed, v.reason
    assert v.outputs[0].cosine >= 0.98
    assert v.inspection["op_histogram"].get("QuantizeLinear", 0) > 0
    side = json.loads(rep.sidecar.read_text())
    assert side["calibration"]["calibration_images"] == 32 and side["calibration"]["source"] == "skimage.data"
    assert side["export"]["int8"]["op_types"] == ["Conv", "MatMul", "Gemm", "Add", "Mul", "Sigmoid"]


def test_exporter_that_fixes_the_batch_is_caught(tmp_out):
    """The dynamo exporter silently re-exports with batch 1; we refuse to call it dynamic."""
    with warnings.catch_warnings(), pytest.raises(ExportError, match="fixed the batch"):
        warnings.simplefilter("ignore", RandomWeightsWarning)
        export("toy_batch_locked", output=tmp_out / "d.onnx", dynamic_batch=True)
    assert list(tmp_out.iterdir()) == []


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"img_size": 50}, "img-size"),
        ({"img_size": 0}, "img-size"),
        ({"batch": 0}, "batch"),
        ({"batch": 2, "dynamic_batch": True}, "not both"),
        ({"precision": "int4"}, "no int4"),
        ({"preset": "riscv", "precision": "int8"}, "preset"),
        ({"calib_method": "kl", "precision": "int8"}, "calib-method"),
        ({"opset": 3}, "opset"),
    ],
)
def test_invalid_options_fail_fast_and_leave_nothing(tmp_out, kw, match):
    from edgevit.errors import EdgeVitError

    with pytest.raises(EdgeVitError, match=match):
        _export(output=tmp_out / "x.onnx", **kw)
    assert list(tmp_out.iterdir()) == []


def test_wrong_suffix_is_refused(tmp_out):
    with pytest.raises(ConfigError, match=".onnx"):
        _export(output=tmp_out / "x.bin")
