"""OpenVINO backend: IR export (fp32/fp16/int8) through `edgevit export`, verified in OpenVINO; the
runner on IR and on the onnx target's files; threads and precision pinning; inspection; the int8
search's pieces (per-node cost charging, bisection, FakeQuantize bypass); one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("openvino")
pytest.importorskip("nncf")

import tests._toy  # noqa: F401  registers toy_vit
from edgevit.backends import get_backend, get_runtime, open_runner, runtimes_for_artifact
from edgevit.backends.openvino import costs, quantize
from edgevit.backends.openvino.export import inspect_openvino
from edgevit.backends.openvino.runner import OpenVinoRunner, compile_config
from edgevit.cli import app
from edgevit.errors import ConfigError, ExportError, Int8NotFasterError
from edgevit.export import export
from edgevit.models import build_reference
from edgevit.quantize.data import embedded_eval_images
from edgevit.verify import compare, judge

cli = CliRunner()
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _err(result) -> str:
    return getattr(result, "stderr", "") or result.output


def _torch(x: np.ndarray) -> np.ndarray:
    model = build_reference("toy_vit")  # the seeded weights every toy export uses
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """toy_vit exported by the CLI at every precision (each verified in OpenVINO by the pipeline)."""
    out = tmp_path_factory.mktemp("ov")
    paths = {}
    for flag, prec in (("--fp32", "fp32"), ("--fp16", "fp16"), ("--int8", "int8")):
        args = ["export", "toy_vit", "--target", "openvino", flag, "-o", str(out / f"toy_{prec}.openvino")]
        if prec == "int8":  # the refusal of a slower int8 is tested below; timings of a 0.3 ms toy are noise
            args += ["--int8-force", "-O", "rounds=8", "--calib-samples", "16"]
        res = cli.invoke(app, args)
        assert res.exit_code == 0, _err(res)
        assert "passed" in res.output
        if prec == "int8":
            assert "kept float" in res.output  # the one-line int8 summary
        paths[prec] = out / f"toy_{prec}.openvino"
    return paths


def test_rows_are_registered() -> None:
    b = get_backend("openvino")
    assert b.suffix == ".openvino" and b.precisions == ("fp32", "fp16", "int8") and b.runtime is not None
    spec = get_runtime("openvino")
    assert b.runtime is spec and spec.also_runs == (".onnx",) and spec.describe is not None
    assert runtimes_for_artifact(Path("m.onnx")) == ["onnxruntime", "openvino"]  # its own runtime first
    assert runtimes_for_artifact(Path("m.openvino")) == ["openvino"]
    assert set(OpenVinoRunner.option_keys) == {"hint", "num_streams", "precision_hint", "device", "perf_count"}


def test_fp32_artifact_is_a_directory_with_metadata(arts: dict[str, Path]) -> None:
    art = arts["fp32"]
    assert sorted(p.name for p in art.iterdir()) == ["model.bin", "model.xml"]
    assert not [p for p in art.parent.iterdir() if "edgevit-tmp" in p.name]
    side = json.loads(art.with_name(art.name + ".json").read_text())
    assert side["target"] == "openvino" and side["verification"]["passed"]
    assert side["export"]["source"]["route"].startswith("fp32 ONNX")
    meta = inspect_openvino(art)["metadata"]
    assert meta["model"] == "toy_vit" and meta["precision"] == "fp32" and meta["img_size"] == "64"
    assert meta["mean"] == "0.485,0.456,0.406" and meta["inference_precision"] == "f32"


def test_fp32_matches_pytorch_within_conformance_bound(arts: dict[str, Path]) -> None:
    x = embedded_eval_images(64, MEAN, STD)
    with open_runner("openvino", arts["fp32"], threads=2) as r:
        out = np.concatenate([r.infer(x[i : i + 1]) for i in range(len(x))])
        assert r.inference_precision() == "f32"  # pinned, even on CPUs whose plugin default is bf16
    rep = compare(_torch(x), out)
    assert not judge(rep, "fp32", judge_top1=False), rep


@pytest.mark.slow
def test_fp32_conformance_fixture_in_openvino(tmp_path: Path) -> None:
    """The official-checkpoint fixture of FcaFormer-L1 through the IR: within 1e-4 * max(1, max|ref|)."""
    conformance = pytest.importorskip("tests.conformance")
    try:
        state = conformance.official_state_dict("fcaformer_l1")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    from edgevit.backends import ExportRequest
    from edgevit.backends.openvino.export import export_openvino
    from edgevit.models import create_model
    from edgevit.rewrite import deploy

    x = conformance.reference_input("fcaformer_l1")
    model = deploy(create_model("fcaformer_l1", checkpoint=state).eval())
    art = export_openvino(ExportRequest(model_name="fcaformer_l1", model=model, example=x[:1].contiguous(),
                                        output=tmp_path / "f.openvino", batch=1)).artifact
    with open_runner("openvino", art, threads=2) as r:
        out = np.concatenate([r.infer(x[i : i + 1].numpy()) for i in range(len(x))])
    conformance.assert_conforms("fcaformer_l1", out)


def test_edgevit_verify_runs_the_ir(arts: dict[str, Path]) -> None:
    res = cli.invoke(app, ["verify", str(arts["fp32"]), "--threads", "1"])
    assert res.exit_code == 0, _err(res)
    assert "passed" in res.output and "nodes" in res.output


def test_fp16_weights_are_half_and_verify(arts: dict[str, Path]) -> None:
    info = inspect_openvino(arts["fp16"])
    assert info["weights"].get("f16") and not info["weights"].get("f32")
    assert info["bin_bytes"] < 0.6 * inspect_openvino(arts["fp32"])["bin_bytes"]
    side = json.loads(arts["fp16"].with_name("toy_fp16.openvino.json").read_text())
    assert side["verification"]["passed"] and side["verification"]["outputs"][0]["cosine"] > 0.999


def test_int8_records_float_ops_and_the_costs_that_decided(arts: dict[str, Path]) -> None:
    art = arts["int8"]
    info = inspect_openvino(art)
    assert info["fake_quantize"] > 0 and info["weights"].get("i8")
    side = json.loads(art.with_name("toy_int8.openvino.json").read_text())
    q = side["export"]["int8"]
    assert q["quantized_ops"] > 0 and q["op_costs"], q
    for f in q["float_ops"]:
        assert f["reason"] in ("compile", "accuracy", "latency", "asked (int8_ignore)")
        if f["reason"] == "latency":
            assert f["int8_us"] > f["float_us"]
    assert {"fp32", "int8", "speedup_vs_fp32"} <= set(q["latency"])
    assert q["accuracy"]["cosine_min"] >= q["accuracy"]["budget_cosine_min"]
    assert info["metadata"]["int8_float_ops"] == ",".join(f["name"] for f in q["float_ops"])
    assert side["verification"]["passed"]


def test_runner_runs_onnx_files_and_bench_accepts_them(tmp_path: Path) -> None:
    """An .onnx of the onnx target runs in OpenVINO (precision read from its metadata_props)."""
    from edgevit.bench.api import plan

    rep = export("toy_vit", target="onnx", output=tmp_path / "toy.onnx", verify=False)
    x = embedded_eval_images(64, MEAN, STD)[:4]
    with open_runner("openvino", rep.artifact, threads=1) as r:
        out = np.concatenate([r.infer(x[i : i + 1]) for i in range(len(x))])
        assert r.precision == "fp32"
    assert not judge(compare(_torch(x), out), "fp32", judge_top1=False)
    p = plan([rep.artifact], runtime="openvino", threads=1)
    assert [c.runtime for c in p.cases] == ["openvino"] and p.cases[0].target == "onnx"
    with pytest.raises(ConfigError, match="run by onnxruntime, openvino, not ncnn"):
        plan([rep.artifact], runtime="ncnn", threads=1)


def test_threads_and_hints_reach_the_plugin(arts: dict[str, Path]) -> None:
    with open_runner("openvino", arts["fp32"], threads=1, num_streams=1, hint="latency") as r:
        assert int(r.compiled.get_property("INFERENCE_NUM_THREADS")) == 1
        assert int(r.compiled.get_property("NUM_STREAMS")) == 1
        assert "LATENCY" in str(r.compiled.get_property("PERFORMANCE_HINT"))
    assert compile_config(3, {}, "fp32") == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 3,
                                              "INFERENCE_PRECISION_HINT": "f32"}
    assert "INFERENCE_PRECISION_HINT" not in compile_config(None, {}, "fp16")  # the plugin's own half precision
    assert compile_config(None, {"precision_hint": "bf16"}, "fp32")["INFERENCE_PRECISION_HINT"] == "bf16"


def test_inspect_gives_the_shared_keys(arts: dict[str, Path]) -> None:
    info = inspect_openvino(arts["fp32"])
    assert info["nodes"] == sum(info["op_histogram"].values()) > 10
    assert info["inputs"] == {"input": [1, 3, 64, 64]} and list(info["outputs"].values()) == [[1, 10]]
    assert "Constant" not in info["op_histogram"]
    with pytest.raises(ExportError, match="not an OpenVINO IR"):
        inspect_openvino(arts["fp32"].parent / "missing.openvino")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hint": "fastest"}, "hint must be one of"),
        ({"num_streams": 0}, "num_streams must be"),
        ({"precision_hint": "int4"}, "precision_hint must be one of"),
        ({"streams": 2}, "unknown openvino option"),
    ],
)
def test_bad_runner_options_are_config_errors(arts: dict[str, Path], options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_runner("openvino", arts["fp32"], threads=1, **options)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-O", "bogus=1"], "unknown option(s) for target openvino"),
        (["--int8", "-O", "int8_cosine=2"], "int8_cosine must be"),
        (["--int8", "-O", "model_type=cnn"], "model_type must be one of"),
        (["--int8", "--calib-method", "entropy"], "is not offered by target openvino: minmax"),
        (["--int8", "--preset", "x86"], "unknown --preset"),
    ],
)
def test_bad_export_options_give_one_line(tmp_out: Path, args: list[str], message: str) -> None:
    res = cli.invoke(app, ["export", "toy_vit", "--target", "openvino", "-o", str(tmp_out), *args])
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith(("error:", "internal error:"))]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in res.output, res.output
    assert list(tmp_out.iterdir()) == []


def test_slower_int8_is_refused_unless_forced(tmp_out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule, not the clock: a measured ratio below 1 in 90% of rounds refuses the export."""
    real = quantize._paired

    def slower(runners, images, batch, rounds, threads):  # the real timing, then the int8 made 2x slower
        out = real(runners, images, batch, 3, threads)
        out["speedup_vs_fp32"] = {"median": 0.5, "p10": 0.45, "p90": 0.55}
        return out

    monkeypatch.setattr(quantize, "_paired", slower)
    with pytest.raises(Int8NotFasterError, match=r"int8 is slower than fp32.*0\.50x.*--int8-force"):
        export("toy_vit", target="openvino", precision="int8", output=tmp_out / "s.openvino",
               options={"int8_search": False, "rounds": 3}, verify=False, calib_samples=16)
    assert list(tmp_out.iterdir()) == []
    rep = export("toy_vit", target="openvino", precision="int8", output=tmp_out / "s.openvino", verify=False,
                 options={"int8_search": False, "rounds": 3}, int8_force=True, calib_samples=16)
    assert "shipped by --int8-force" in " ".join(rep.record.export["int8"]["notes"])
    with pytest.raises(ConfigError, match="unknown option"):  # the flag, no longer an -O option
        export("toy_vit", target="openvino", precision="int8", output=tmp_out / "s2.openvino", verify=False,
               options={"int8_force": True})


def test_undone_latency_choices_still_ship_int8_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every op charged as slower (margins removed), and the end-to-end timing saying those choices lost:
    they are undone, and the re-quantized artifact is compressed like any other (int8 weights, not float
    weights under a FakeQuantize: a loaded CI machine shipped those)."""
    monkeypatch.setattr(quantize, "MARGIN_US", float("-inf"))
    monkeypatch.setattr(quantize, "MARGIN_REL", float("-inf"))
    real = quantize._paired

    def choices_lost(runners, images, batch, rounds, threads):  # the real timing; the choices made 2x slower
        out = real(runners, images, batch, 3, threads)
        if "latency_choices_gain" in out:
            out["latency_choices_gain"] = {"median": 0.5, "p10": 0.45, "p90": 0.55}
        return out

    monkeypatch.setattr(quantize, "_paired", choices_lost)
    rep = export("toy_vit", target="openvino", precision="int8", output=tmp_path / "u.openvino", verify=False,
                 options={"rounds": 3}, int8_force=True, calib_samples=16)
    q = rep.record.export["int8"]
    assert any("made int8 slower end to end" in n for n in q["notes"]) and "undone_latency_choices" in q["latency"]
    assert not [f for f in q["float_ops"] if f["reason"] == "latency"]
    info = inspect_openvino(rep.artifact)
    assert info["weights"].get("i8") and info["fake_quantize"] > 0


# ----------------------------------------------------------------------------- the search's pieces


def test_charging_follows_fusion_reorders_and_quantizers() -> None:
    """Pure data: a conv fused with its bias (named after the Add in fp32), a reorder feeding it, an
    unfused FakeQuantize feeding two convs, and a float op with a FakeQuantize fused into it."""
    N = costs.RuntimeNode
    fp32 = [N("r0", "Reorder", "", (), ("conv_bias",)), N("conv_bias", "Convolution", "", ("conv_bias",), ("ln",)),
            N("ln", "MVN", "", ("ln",), ("conv2",)), N("conv2", "Convolution", "", ("conv2/w",), ())]
    int8 = [N("fq", "Subgraph", "", ("x/fq",), ("r1",)), N("r1", "Reorder", "", (), ("conv",)),
            N("conv", "Convolution", "", ("conv/w", "conv_bias"), ("ln",)),
            N("ln", "Subgraph", "", ("ln", "ln/fq"), ("conv2",)), N("conv2", "Convolution", "", ("conv2/w",), ())]
    alias = {"conv/w": "conv/w", "conv_bias": "conv/w", "conv2/w": "conv2/w"}
    f_times = {"r0": 2, "conv_bias": 10, "ln": 5, "conv2": 8}
    i_times = {"fq": 4, "r1": 1, "conv": 6, "ln": 7, "conv2": 3}
    found, totals = costs.op_costs(fp32, f_times, int8, i_times, {"conv/w": "Convolution", "conv2/w": "Convolution"},
                                   {"x/fq": ["conv/w", "conv2/w"], "ln/fq": ["conv2/w"]}, alias)
    by = {c.name: c for c in found}
    assert by["conv/w"].float_us == 12 and by["conv/w"].int8_us == 2 + 1 + 6  # half the shared quantizer
    assert by["conv2/w"].float_us == 8 and by["conv2/w"].int8_us == 2 + 2 + 3  # + the LayerNorm's extra 2 µs
    assert totals["fp32_uncharged_ms"] == pytest.approx(0.005) and totals["int8_uncharged_ms"] == pytest.approx(0.005)


def test_bisection_finds_each_breaking_op() -> None:
    ops = [f"op{i}" for i in range(40)]
    bad = {"op7", "op23"}
    calls = []

    def breaks(float_ops: set[str]) -> bool:
        calls.append(1)
        return bool(bad - float_ops)

    assert quantize.first_breaking(ops, breaks)[0] == "op7"
    assert sorted(quantize.keep_float_until(ops, set(), breaks, "test")) == ["op23", "op7"]
    assert len(calls) < 30  # logarithmic, not one evaluation per op
    with pytest.raises(ExportError, match="even with every quantized op float"):
        quantize.keep_float_until(ops, set(), lambda fl: True, "test")


def test_dequantize_ops_restores_float_inputs(tmp_path: Path) -> None:
    import openvino as ov

    from edgevit.quantize.data import from_embedded

    rep = export("toy_vit", target="openvino", output=tmp_path / "f.openvino", verify=False)
    fp32 = ov.Core().read_model(str(rep.artifact / "model.xml"))
    calib = from_embedded(img_size=64, mean=MEAN, std=STD, samples=8)
    q = quantize.nncf_quantize(fp32, calib, batch=1, preset="performance", model_type="transformer", ignored=())
    ops = quantize.quantized_ops(q)
    assert ops and set(ops.values()) <= {"Convolution", "MatMul", "ScaledDotProductAttention", "GroupConvolution"}
    back = quantize.dequantize_ops(q, set(ops), quantize.float_biases(fp32))
    assert quantize.quantized_ops(back) == {}
    assert not [o for o in back.get_ordered_ops() if o.get_type_name() in ("FakeQuantize", "Convert")]
    x = embedded_eval_images(64, MEAN, STD)[:4]
    outs = []
    for m in (fp32, back):
        r = OpenVinoRunner(threads=1, precision_hint="f32")
        r.load_model(m)
        outs.append(np.concatenate([r.infer(x[i : i + 1]) for i in range(len(x))]))
    assert quantize.cosine_rows(*outs).min() > 0.99999  # float again: smooth-quant scales alone remain


def test_doctor_reports_openvino_devices() -> None:
    res = cli.invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    row = next(r for r in json.loads(res.output)["runtimes"] if r["runtime"] == "openvino")
    assert row["available"] and row["version"] and "CPU" in row["details"]["devices"]


@pytest.mark.slow
def test_real_model_int8_pays_and_meets_the_budget(tmp_path: Path) -> None:
    """cas_vit_xs with fixture weights: int8 verified, worst cosine >= 0.995, not slower than fp32."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _common import save_fixture_checkpoint

    ckpt, source = save_fixture_checkpoint("cas_vit_xs", tmp_path)
    if ckpt is None:
        pytest.skip(source)
    rep = export("cas_vit_xs", target="openvino", precision="int8", checkpoint=ckpt, output=tmp_path / "c.openvino")
    q = rep.record.export["int8"]
    assert rep.verification is not None and rep.verification.passed
    assert q["accuracy"]["cosine_min"] >= 0.995 and q["latency"]["speedup_vs_fp32"]["p90"] >= 1.0


@pytest.mark.slow
def test_stvit_small_int8_ships_what_compiles(tmp_path: Path) -> None:
    """stvit_small with the conformance fixture: its quantized attention MatMuls compile as FakeQuantize but
    not once the weights are folded to int8; the search judges the shipped form, keeps those float
    (reason `compile`) and the artifact loads."""
    conformance = pytest.importorskip("tests.conformance")
    try:
        state = conformance.official_state_dict("stvit_small")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    torch.save(state, tmp_path / "stvit_small.pth")
    rep = export("stvit_small", target="openvino", precision="int8", output=tmp_path / "s.openvino",
                 checkpoint=tmp_path / "stvit_small.pth", int8_force=True)
    q = rep.record.export["int8"]
    assert any(f["reason"] == "compile" for f in q["float_ops"]), q["float_ops"]
    assert rep.record.verification["passed"] and inspect_openvino(rep.artifact)["weights"].get("i8")
    with open_runner("openvino", rep.artifact, threads=2) as r:
        assert r.infer(np.zeros((1, 3, 224, 224), np.float32)).shape == (1, 1000)
