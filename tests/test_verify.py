"""verify: the metrics themselves, the fp32 bounds on tiny logits, sidecar rebuilds, tampering, and
an unavailable runtime reported as 'not executed' instead of faked."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.artifact import artifact_sha256
from edgevit.errors import VerificationError
from edgevit.verify import compare, judge, verify


def test_compare_metrics_against_hand_computed_values():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(8, 10))
    rep = compare(ref, ref.copy())
    assert rep.max_abs_error == 0 and rep.cosine == pytest.approx(1.0) and rep.sqnr_db == float("inf")
    noise = rng.normal(size=ref.shape) * 0.01
    rep = compare(ref, ref + noise)
    expected_sqnr = 10 * np.log10((ref**2).sum() / (noise**2).sum())
    assert rep.sqnr_db == pytest.approx(expected_sqnr, rel=1e-9)
    assert rep.max_abs_error == pytest.approx(np.abs(noise).max())
    assert rep.top1_agreement == pytest.approx((ref.argmax(1) == (ref + noise).argmax(1)).mean())
    flipped = compare(ref, -ref)
    assert flipped.cosine == pytest.approx(-1.0) and flipped.top1_agreement < 0.5


def test_fp32_bound_is_relative_for_tiny_logits():
    """Random-init FcaFormer logits are ~1e-19: an absolute bound alone passes garbage."""
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(4, 10)) * 1e-19
    garbage = rng.normal(size=(4, 10)) * 1e-19
    rep = compare(ref, garbage)
    assert rep.max_abs_error < 1e-4  # the conformance bound alone would pass this
    fails = judge(rep, "fp32")
    assert any("relative error" in f for f in fails) and any("cosine" in f for f in fails)
    good = compare(ref, ref * (1 + 1e-7))
    assert judge(good, "fp32") == []


def test_int8_judged_by_cosine_and_top1_not_max_error():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(16, 10)) * 10
    rep = compare(ref, ref + rng.normal(size=ref.shape) * 0.3)
    assert rep.max_abs_error > 0.3
    assert judge(rep, "int8") == []
    rep = compare(ref, rng.normal(size=ref.shape) * 10)
    assert judge(rep, "int8")
    assert not any("top-1" in f for f in judge(rep, "int8", judge_top1=False))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from edgevit.export import export

    out = tmp_path_factory.mktemp("v") / "toy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export("toy_vit", output=out)
    return out


def test_verify_rebuilds_reference_from_sidecar(exported):
    rep = verify(exported)
    assert rep.executed and rep.passed, rep.reason
    o = rep.outputs[0]
    assert o.relative_error < 1e-4 and o.cosine > 0.99999 and o.images >= 10
    assert rep.inspection["nodes"] > 0 and "LayerNormalization" in rep.inspection["op_histogram"]
    assert rep.latency_ms["median"] > 0 and rep.size_bytes > 0
    assert not rep.judged_top1  # seeded weights: top-1 recorded, not judged


def test_tampered_artifact_fails(exported, tmp_path):
    import onnx
    from onnx import numpy_helper

    bad = tmp_path / "toy.onnx"
    m = onnx.load(str(exported))
    big = max(m.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = numpy_helper.to_array(big).copy()
    arr *= -1.5
    big.CopyFrom(numpy_helper.from_array(arr, big.name))
    onnx.save(m, str(bad))
    shutil.copy(exported.with_name(exported.name + ".json"), bad.with_name(bad.name + ".json"))
    with pytest.raises(VerificationError, match="does not match its sidecar: sha256"):
        verify(bad)  # the bytes are not the ones the record describes
    side = json.loads(bad.with_name(bad.name + ".json").read_text())
    side["sha256"] = artifact_sha256(bad)  # a record that names these bytes: now the numbers must catch it
    bad.with_name(bad.name + ".json").write_text(json.dumps(side))
    rep = verify(bad)
    assert rep.executed and not rep.passed and rep.outputs[0].failures
    with pytest.raises(VerificationError):
        verify(bad, raise_on_failure=True)


def test_changed_reference_weights_are_detected(exported, tmp_path):
    art = tmp_path / "toy.onnx"
    shutil.copy(exported, art)
    side = json.loads(exported.with_name(exported.name + ".json").read_text())
    side["weights"]["seed"] = 123  # other seeded weights than the ones exported
    art.with_name(art.name + ".json").write_text(json.dumps(side))
    with pytest.raises(VerificationError, match="other weights"):
        verify(art)


def test_unavailable_runtime_is_reported_not_faked(exported, monkeypatch):
    import dataclasses

    from edgevit.backends import Availability, _registry

    onnx = _registry.get_backend("onnx")
    gone = dataclasses.replace(onnx.runtime, probe=lambda: Availability(False, reason="not on this machine (test)"))
    monkeypatch.setitem(_registry._BACKENDS, "onnx", dataclasses.replace(onnx, runtime=gone))
    rep = verify(exported)
    assert not rep.executed and not rep.outputs and not rep.latency_ms
    assert rep.status.startswith("not executed:") and "test" in rep.status
    assert rep.inspection["nodes"] > 0  # the static inspection is still there
