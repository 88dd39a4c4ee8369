"""The `openvino` target: deploy form -> edgevit's fp32 ONNX (the onnx target's exporter) ->
`openvino.convert_model` -> OpenVINO IR: fp32, fp16 (weights compressed to fp16) or int8 (NNCF, `quantize`).

Why from ONNX rather than from the torch module: measured on fcaformer_l1, cas_vit_xs, cas_vit_s and
stvit_small with fixture weights, both routes give the same outputs (max error to the deploy form
1.8e-7-2.9e-6 either way) and the same latency (paired ratio 0.98-1.02, 40 rounds); OpenVINO's PyTorch
frontend took 4-17 s per model against 0.6-2.6 s for reading the ONNX file (plus 6-9 s to export it),
and the ONNX route reuses the graph the onnx target already exports and checks (batch, opset, onnxslim),
so there is one front end to keep right, not two.

The artifact is a directory `NAME.openvino/` holding `model.xml` and `model.bin`: the pipeline writes
to a temporary name and renames one path when verified, and OpenVINO finds the weights of an `.xml`
by its stem, so fixed member names inside one directory stay valid across that rename (and one path is
what `edgevit bench` copies to a board). Metadata (model, precision, preprocessing, image size, the
inference precision the runner defaults to, int8 ops kept float) is in the IR's `rt_info` under
`edgevit`, and in the sidecar.
"""
from __future__ import annotations

import collections
import dataclasses
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from edgevit.backends.base import ExportRequest, ExportResult
from edgevit.backends.openvino.runner import DEFAULT_INFERENCE_PRECISION, IR_XML, ir_xml
from edgevit.errors import ConfigError, ExportError

IR_BIN = "model.bin"
# target options besides the int8 ones (edgevit.backends.openvino.quantize.OPTION_KEYS)
EXPORT_OPTION_KEYS = ("exporter",)
STRUCTURAL_OPS = ("Constant", "Parameter", "Result")


def _check_options(req: ExportRequest) -> None:
    from edgevit.backends.openvino.quantize import OPTION_KEYS

    allowed = EXPORT_OPTION_KEYS + (OPTION_KEYS if req.precision == "int8" else ())
    unknown = sorted(set(req.options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) for target openvino {req.precision}: {', '.join(unknown)}; "
                          f"it reads: {', '.join(allowed)}")
    if req.preset is not None and req.precision != "int8":
        raise ConfigError("--preset applies to --int8 only")
    if req.precision == "int8":
        from edgevit.backends.openvino.quantize import Int8Settings

        Int8Settings.from_options(req.options, req.preset, force=req.int8_force)  # bad int8 options fail before any work


def _onnx_fp32(req: ExportRequest, path: Path) -> dict[str, Any]:
    """edgevit's fp32 ONNX of the deploy form, exactly as the onnx target writes it."""
    from edgevit.backends.onnx.export import export_onnx

    sub = dataclasses.replace(req, precision="fp32", output=path, calib=None, preset=None,
                              options={k: v for k, v in req.options.items() if k == "exporter"})
    return export_onnx(sub).metadata


def _convert(onnx_path: Path) -> Any:
    import openvino as ov

    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises OpConversionFailure / RuntimeError / its own
        raise ExportError(f"openvino.convert_model failed: {str(exc).strip().splitlines()[0]}") from None
    rt = model.get_rt_info()
    if "framework" in rt:  # the ONNX file's metadata_props: edgevit's own section replaces them
        del rt["framework"]
    return model


def _set_rt_info(model: Any, req: ExportRequest, extra: dict[str, str]) -> dict[str, str]:
    """Preprocessing and provenance in the IR's rt_info (`<rt_info><edgevit>...` in model.xml)."""
    from edgevit import __version__

    info = {
        "edgevit_version": __version__,
        "model": req.model_name,
        "precision": req.precision,
        "inference_precision": DEFAULT_INFERENCE_PRECISION[req.precision],
        "input": "input: float32 NCHW RGB, pixels/255 then (x - mean) / std",
        "img_size": str(req.img_size),
        "batch": "dynamic" if req.dynamic_batch else str(req.batch),
        "mean": ",".join(f"{v:g}" for v in req.mean),
        "std": ",".join(f"{v:g}" for v in req.std),
        **extra,
    }
    for key, value in info.items():
        model.set_rt_info(value, ["edgevit", key])
    return info


def _progress() -> Any:
    """A one-line Rich status on stderr for the int8 search (it takes tens of seconds)."""
    from rich.console import Console

    return Console(stderr=True).status("openvino int8", spinner="dots")


def _budget_images(req: ExportRequest) -> Any:
    """What the int8 accuracy budget is judged on: the calibration hold-out and the embedded photos
    (the images `edgevit verify` uses)."""
    import numpy as np

    from edgevit.quantize.data import embedded_eval_images

    photos = embedded_eval_images(req.img_size, req.mean, req.std)
    return np.concatenate([req.calib.holdout, photos]) if req.calib is not None else photos


def export_openvino(req: ExportRequest) -> ExportResult:
    """Exporter contract: write the IR directory `req.output` (a temporary name), return facts."""
    import openvino as ov

    _check_options(req)
    out = Path(req.output)
    meta: dict[str, Any] = {"openvino_version": ov.__version__.split("-")[0], "files": [IR_XML, IR_BIN],
                            "inference_precision": DEFAULT_INFERENCE_PRECISION[req.precision]}
    extra: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edgevit-ov-") as tmp:
        onnx_path = Path(tmp) / "fp32.onnx"
        onnx_meta = _onnx_fp32(req, onnx_path)
        meta["source"] = {"route": "fp32 ONNX (onnx target) -> openvino.convert_model", **onnx_meta}
        meta["opset"] = onnx_meta.get("opset")
        model = _convert(onnx_path)
    if req.precision == "int8":
        model, report = _quantize(model, req)
        meta["int8"] = report.as_dict()
        meta["int8_summary"] = report.summary()
        extra["int8_float_ops"] = ",".join(f["name"] for f in report.float_ops)
    info = _set_rt_info(model, req, extra)
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ov.save_model(model, str(out / IR_XML), compress_to_fp16=req.precision == "fp16")
    facts = inspect_openvino(out)
    meta.update({"rt_info": info, "nodes": facts["nodes"], "op_histogram": facts["op_histogram"],
                 "weights": facts["weights"]})
    if req.precision == "fp16":
        meta["fp16"] = {"weights": "compressed to fp16 (ov.save_model compress_to_fp16)",
                        "compute": "the runner leaves the CPU plugin's inference precision (bf16/f16 where the "
                        "CPU has it, f32 otherwise) unless precision_hint says otherwise"}
    return ExportResult(artifact=out, metadata=meta)


def _quantize(model: Any, req: ExportRequest) -> tuple[Any, Any]:
    from edgevit.backends.openvino.quantize import Int8Settings, quantize_openvino

    if req.calib is None:
        raise ExportError("int8 needs calibration images (the pipeline passes them)")
    settings = Int8Settings.from_options(req.options, req.preset, force=req.int8_force)
    batch = 1 if req.dynamic_batch else req.batch
    with _progress() as status:
        return quantize_openvino(model, req.calib, _budget_images(req), batch=batch, threads=req.threads,
                                 settings=settings, progress=lambda msg: status.update(f"openvino {msg}"))


def inspect_openvino(path: Path) -> dict[str, Any]:
    """Static facts without compiling: op count and histogram, I/O shapes, weight types, rt_info."""
    import openvino as ov

    xml = ir_xml(Path(path))
    if not xml.is_file():
        raise ExportError(f"not an OpenVINO IR: {xml} not found")
    try:
        model = ov.Core().read_model(str(xml))
    except RuntimeError as exc:
        raise ExportError(f"not a readable OpenVINO IR: {xml.name}: {str(exc).strip().splitlines()[0]}") from None
    ops = model.get_ordered_ops()
    hist = collections.Counter(op.get_type_name() for op in ops if op.get_type_name() not in STRUCTURAL_OPS)
    weights = collections.Counter(op.get_element_type().get_type_name() for op in ops if op.get_type_name() == "Constant"
                                  and op.get_output_partial_shape(0).rank.get_length() > 1)

    def shape(port: Any) -> list[int | str]:
        return [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]

    rt: dict[str, str] = {}
    if model.has_rt_info(["edgevit"]):
        rt = {k: str(v.astype(str)) for k, v in model.get_rt_info(["edgevit"]).astype(dict).items()}
    return {
        "nodes": sum(hist.values()),
        "op_histogram": dict(hist.most_common()),
        "inputs": {p.get_any_name(): shape(p) for p in model.inputs},
        "outputs": {p.get_any_name(): shape(p) for p in model.outputs},
        "weights": dict(weights.most_common()),  # element types of constants of rank > 1
        "fake_quantize": hist.get("FakeQuantize", 0),
        "metadata": rt,
        "xml_bytes": xml.stat().st_size,
        "bin_bytes": xml.with_suffix(".bin").stat().st_size if xml.with_suffix(".bin").is_file() else None,
    }
