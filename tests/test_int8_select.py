"""Latency-aware mixed precision (issue 18): `--int8` keeps float where int8 measured slower on the
target runtime, records it in the sidecar, says it in one line, and refuses int8 that cannot pay
unless `--int8-force`. Everything runs for real: ONNX Runtime / ExecuTorch timings on this host.

The models (tests/_tiny_mlp.py) are built so the measured answer is far from the noise: Gemms on
1 x 64 rows cost ~5 us in float and twice that with their Q/DQ, 64-channel 3x3 convs half as much
in int8 as in float (measured here, 2 threads: int8 0.16 ms vs float 0.32 ms).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tests._tiny_mlp  # noqa: F401  registers toy_tiny_mlp, toy_conv_tiny_mlp
from edgevit.artifact import MixedPrecision, read_record
from edgevit.cli import app
from edgevit.quantize.select import Selection, int8_summary, int8_warning
from edgevit.quantize.verdict import judge, median_interval

runner = CliRunner()


def _err(result) -> str:
    return getattr(result, "stderr", "") or result.output


def test_mixed_model_keeps_float_where_int8_measured_slower(tmp_path):
    """Tiny Gemms go back to float, the 64-channel convs stay int8; the sidecar lists the float nodes
    with the costs that decided, the output says it in one line, and the artifact runs in ORT."""
    import onnxruntime as ort

    res = runner.invoke(app, ["export", "toy_conv_tiny_mlp", "--int8", "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, _err(res)
    lines = [ln for ln in res.output.splitlines() if ln.startswith("onnxruntime int8 (measured)")]
    assert len(lines) == 1 and "float where int8 does not pay: " in lines[0] and "x fp32" in lines[0], res.output

    rec = read_record(tmp_path / "m.onnx")
    mp = rec.int8_precision
    assert isinstance(mp, MixedPrecision) and mp.runtime == "onnxruntime" and mp.mode == "measured"
    assert mp.outcome == "pays" and not mp.forced and "2 threads" in mp.cost_source
    assert mp.speed["ratio"] > 1.0 and mp.speed["ci_low"] > 1.0  # measured faster than fp32, conclusively
    floats = {n.name: n for n in mp.float_nodes}
    gemms = [n for n in floats.values() if n.kind == "Gemm"]
    assert len(gemms) >= 10, floats  # the tail of 13 tiny Gemms (at most a few kept int8 by the whole-model check)
    for n in gemms:  # each one kept float because its measured int8 cost was higher
        assert n.int8_ms is not None and n.float_ms is not None and n.int8_ms >= n.float_ms * 0.97, n  # not >= 3% cheaper
        assert n.reason.startswith("float: int8 does not pay")
    sel = rec.export["int8_selection"]
    big = [d for d in sel["nodes"] if d["kind"] == "Conv" and (d["float_ms"] or 0) > 0.1]  # the 64-channel convs
    assert big and all(d["int8"] and d["int8_ms"] < d["float_ms"] for d in big)  # where it pays, it is int8
    for d in sel["nodes"]:  # int8 kept where its own cost does not pay only when no whole-model revert helped
        if d["int8"] and d["int8_ms"] is not None and d["int8_ms"] >= d["float_ms"]:
            assert d["reason"].startswith("int8: kept although"), d
    assert mp.int8_nodes == len([d for d in sel["nodes"] if d["int8"]]) and mp.summary == lines[0]
    assert sel["passes"][0]["taken"] and mp.holdout_cosine >= 0.995

    # the shipped graph really is mixed: ORT runs quantized convs and float Gemms
    import onnx

    g = onnx.load(str(tmp_path / "m.onnx")).graph
    consumers_of_dq = {i for n in g.node if n.op_type == "DequantizeLinear" for i in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    gemms_g = [n for n in g.node if n.op_type == "Gemm"]
    assert any(n.input[0] in consumers_of_dq for n in convs)
    float_names = {n.name for n in gemms}
    assert all(n.input[1] not in consumers_of_dq for n in gemms_g if n.name in float_names)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})[0]
    assert out.shape == (1, 10) and np.isfinite(out).all()


def test_int8_that_cannot_pay_is_refused_in_one_line(tmp_path):
    out = tmp_path / "o"
    res = runner.invoke(app, ["export", "toy_tiny_mlp", "--int8", "-o", f"{out}/"])
    assert res.exit_code == 1, res.output
    err = _err(res).strip().splitlines()
    line = [ln for ln in err if "int8 does not pay" in ln]
    assert len(line) == 1, err
    assert "toy_tiny_mlp on onnxruntime" in line[0] and "--int8-force" in line[0]
    ratio = float(line[0].rsplit("measured ", 1)[1].split("x fp32")[0])  # the whole-model paired figure
    assert ratio < 0.95  # the measured ratio is in the message, and it is a slowdown
    assert not out.exists() or not any(out.iterdir())  # nothing shipped, no temporary left


def test_int8_force_ships_with_an_honest_note(tmp_path):
    res = runner.invoke(app, ["export", "toy_tiny_mlp", "--int8", "--int8-force", "-o", str(tmp_path / "f.onnx")])
    assert res.exit_code == 0, _err(res)
    assert "shipped with --int8-force although int8 does not pay" in res.output
    assert "int8 shipped with --int8-force although it does not pay on onnxruntime" in _err(res)
    rec = read_record(tmp_path / "f.onnx")
    assert rec.int8_precision.forced and rec.int8_precision.outcome in ("slower", "no node pays")
    assert rec.int8_precision.speed["ratio"] < 1.0
    assert any("--int8-force" in w for w in rec.warnings)
    assert rec.verification["passed"]  # it is still a correct int8 model
    side = json.loads((tmp_path / "f.onnx.json").read_text())
    assert side["schema"] == "edgevit.artifact/2" and side["int8_precision"]["forced"] is True


def test_record_reads_back_and_old_sidecars_still_read(tmp_path):
    """int8_precision round-trips typed; a sidecar without it (before this field) still reads."""
    from edgevit.artifact import ArtifactRecord, FloatNode

    mp = MixedPrecision(runtime="onnxruntime", mode="measured", outcome="pays", int8_nodes=3,
                        float_nodes=[FloatNode("g", "Gemm", "float: int8 does not pay", 0.011, 0.005)],
                        speed={"ratio": 1.3}, summary="x")
    rec = ArtifactRecord(artifact="a.onnx", model="toy_vit", target="onnx", precision="int8", img_size=64,
                         int8_precision=mp)
    back = ArtifactRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back.int8_precision == mp
    old = rec.to_dict()
    del old["int8_precision"]
    assert ArtifactRecord.from_dict(old).int8_precision is None


def test_summary_line_and_warning_follow_the_outcome():
    base = dict(runtime="onnxruntime", mode="measured", cost_source="m", cost_kind="measured", budget={},
                margin=0.03, accuracy={"cosine": 0.999},
                speed={"outcome": "slower", "ratio": 0.6, "ci_low": 0.58, "ci_high": 0.61, "rounds": 20})
    forced = Selection(outcome="no node pays", forced=True, **base)
    assert "0.60x fp32" in int8_warning(forced) and "--int8-force" in int8_summary(forced)
    parity = Selection(outcome="parity", forced=False, **{**base, "speed": {**base["speed"], "ratio": 0.98}})
    assert int8_warning(parity) is None and "--int8-force" not in int8_summary(parity)
    assert "\n" not in int8_summary(forced)
    missed = Selection(outcome="pays", forced=False, **{**base, "budget": {"cosine": 0.995, "cosine_min": 0.99},
                                                       "accuracy": {"cosine": 0.98, "cosine_min": 0.96,
                                                                    "top1_agreement": 0.9, "images": 8}})
    assert "misses its accuracy budget" in int8_warning(missed) and "0.98000 < 0.995" in int8_warning(missed)
    # a faster artifact that misses its budget says so, not that it was forced through
    assert "misses its accuracy budget" in int8_summary(missed) and "--int8-force" not in int8_summary(missed)


def test_paired_interval_excludes_one_only_when_the_effect_beats_the_noise():
    rng = np.random.default_rng(0)
    assert judge(list(1.3 + rng.normal(0, 0.05, 40)))[0] == "faster"
    assert judge(list(0.6 + rng.normal(0, 0.05, 40)))[0] == "slower"
    assert judge(list(1.0 + rng.normal(0, 0.3, 20)))[0] == "inconclusive"
    lo, hi = median_interval(list(range(100)))
    assert 38 <= lo < 50 < hi <= 61  # the sign-test interval of the median of 0..99


@pytest.mark.slow
def test_executorch_int8_keeps_float_where_it_measured_slower(tmp_path):
    """ExecuTorch/XNNPACK: costs from ETDump, variants lowered and timed as .pte programs (about 40 s)."""
    from edgevit.backends import open_runner
    from edgevit.export import export

    pytest.importorskip("executorch")
    rep = export("toy_conv_tiny_mlp", target="executorch", precision="int8", output=tmp_path / "m.pte",
                 )  # the per-node search is the default, as on every target
    mp = rep.record.int8_precision
    assert mp.runtime == "executorch" and "ETDump" in mp.cost_source and mp.outcome in ("pays", "parity",
                                                                                        "inconclusive")
    sel = rep.record.export["int8_selection"]
    assert sel["int8_node_count"] >= 1 and sel["passes"], sel
    measured_slow = [d for d in sel["passes"][0]["costs"].items() if d[1]["int8_ms"] > d[1]["float_ms"]]
    if sel["passes"][0]["taken"]:  # a revert was taken: its nodes are recorded float, with their costs
        assert mp.float_nodes and all(n.reason.startswith("float: int8 does not pay") for n in mp.float_nodes)
    else:  # none made the whole model faster: the slow nodes stay int8 and say why
        assert all("no revert proposal" in d["reason"] for d in sel["nodes"] if d["name"] in dict(measured_slow))
    assert rep.record.export["int8_summary"].startswith("executorch int8 (measured)")
    with open_runner("executorch", tmp_path / "m.pte", threads=2) as r:
        assert r.infer(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 10)


def test_bench_still_measures_an_int8_that_does_not_pay(tmp_path, monkeypatch):
    """The export's refusal protects deployment; `edgevit bench -p int8` is asked for the figure, so it
    measures the forced artifact beside fp32 and says why it needed forcing."""
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "toy_tiny_mlp", "-p", "fp32", "-p", "int8", "--runs", "20", "--json", str(out)])
    assert res.exit_code == 0, _err(res)
    assert "int8 does not pay" in _err(res) and "benchmarking it anyway" in _err(res)
    cases = {c["case"]["precision"]: c for c in json.loads(out.read_text())["cases"]}
    assert cases["int8"]["ok"] and cases["fp32"]["ok"], cases
    assert "does not pay" in cases["int8"]["case"]["runtime_note"]
    assert cases["int8"]["stats"]["median"] > 0 and len(cases["int8"]["samples_ms"]) >= 20
    rec = read_record(Path(cases["int8"]["case"]["artifact"]))
    assert rec.int8_precision is not None and rec.int8_precision.outcome in ("slower", "no node pays")
