"""The artifact record: one typed reader and writer, schema 1 sidecars still read, verify uses what the
record says (preprocessing, hash), and no import circle between export and verify."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.artifact import SCHEMA, ArtifactRecord, read_record, sidecar_path, write_record
from edgevit.errors import ConfigError, VerificationError
from edgevit.models import MODEL_INIT, build_reference, list_models, register_model, state_dict_sha256


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from edgevit.export import export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export("toy_vit", output=tmp_path_factory.mktemp("a") / "toy.onnx")


def test_record_round_trips_through_its_one_writer(exported, tmp_path):
    rec = read_record(exported.artifact)
    assert rec is not None and rec.schema == SCHEMA and rec == exported.record
    copy = tmp_path / "copy.json"
    write_record(rec, copy)
    assert ArtifactRecord.from_dict(json.loads(copy.read_text())) == rec
    assert rec.input.mean == (0.485, 0.456, 0.406) and rec.weights.kind == "seeded"


def test_schema_1_sidecar_still_reads_and_rebuilds(exported):
    """What export wrote before the record existed: `checkpoint` and `size_mb`, no `schema`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old_model = build_reference("toy_vit", init=MODEL_INIT)  # schema 1 exports used the model's own init
    v1 = {
        "artifact": "toy.onnx", "model": "toy_vit", "family": "toy", "target": "onnx", "precision": "fp32",
        "img_size": 64, "batch": 1, "dynamic_batch": False, "num_classes": 10,
        "input": {"layout": "NCHW", "color": "RGB", "scale": "pixels / 255", "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225], "resize": "shorter side to img_size / 0.875, centre crop"},
        "opset": 20, "versions": {"edgevit": "0.1.0"}, "sha256": "ab" * 32, "size_mb": 1.234,
        "checkpoint": {"path": "random", "sha256": None, "seed": 0, "weights_sha256": state_dict_sha256(old_model)},
        "calibration": None, "export": {}, "warnings": [], "created": "2026-11-01T00:00:00+00:00",
    }
    rec = ArtifactRecord.from_dict(v1)
    assert rec.weights.kind == "seeded" and rec.weights.init == MODEL_INIT and rec.size_bytes == 1_234_000
    assert state_dict_sha256(rec.rebuild_reference()) == v1["checkpoint"]["weights_sha256"]
    v1["checkpoint"] = {"path": "/ckpt/toy.pth", "sha256": "cd" * 32, "seed": None, "weights_sha256": "x"}
    rec = ArtifactRecord.from_dict(v1)
    assert rec.weights.kind == "checkpoint" and rec.weights.checkpoint == "/ckpt/toy.pth"


@pytest.mark.parametrize("text, match", [
    ("[1, 2]", "JSON object"),
    ('{"schema": "edgevit.artifact/9", "model": "x"}', "unknown artifact record schema"),
    ('{"model": "toy_vit"}', "missing"),
    ('{"artifact": "a", "model": "m", "target": "onnx", "precision": "fp32", "img_size": 64, "input": 3}',
     "malformed"),
    ('{"artifact": "a", "model": "m"', "not valid JSON"),
])
def test_bad_sidecars_are_one_line_config_errors(tmp_path, text, match):
    art = tmp_path / "x.onnx"
    art.write_bytes(b"onnx")
    sidecar_path(art).write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_record(art)


def test_verify_normalises_with_the_recorded_preprocessing(tmp_path):
    """Schema 1 verify read mean/std from the record's top level, which export never wrote there, so every
    artifact was verified with ImageNet statistics. A model with other statistics proves the fix."""
    from edgevit.export import export
    from edgevit.verify import verify
    from tests._toy import ToyViT

    if "toy_halfnorm" not in list_models("toy"):
        @register_model(family="toy", paper="test model", official=False, img_size=64, num_classes=10,
                        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        def toy_halfnorm(num_classes: int = 10, **_: object):
            return ToyViT(num_classes=num_classes)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = export("toy_halfnorm", output=tmp_path / "h.onnx")
    again = verify(rep.artifact)
    assert again.passed and again.data["mean"] == [0.5, 0.5, 0.5] and again.data["std"] == [0.25, 0.25, 0.25]
    side = json.loads(rep.sidecar.read_text())
    side["input"]["mean"] = [0.485, 0.456, 0.406]  # a sidecar edited after export: the artifact says otherwise
    rep.sidecar.write_text(json.dumps(side))
    with pytest.raises(VerificationError, match="not the artifact's own"):
        verify(rep.artifact)


def test_verify_and_export_do_not_import_each_other():
    code = ("import sys, edgevit.verify, edgevit.artifact; "
            "print('edgevit.export' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_verify_rewrites_the_record_through_its_writer(exported, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from edgevit.cli import app

    art = tmp_path / "toy.onnx"
    shutil.copy(exported.artifact, art)
    shutil.copy(exported.sidecar, sidecar_path(art))
    before = read_record(art)
    res = CliRunner().invoke(app, ["verify", str(art)])
    assert res.exit_code == 0, res.output
    after = read_record(art)
    assert after.verification["passed"] and after.verification["artifact"] == str(art)
    after.verification = before.verification
    assert after == before  # nothing else in the record changed
