"""Core ML target: an ML program (`.mlpackage`), fp16 by default, fp32 on request, int8 by weights
(and W8A8 where it converts).

Source graph: `torch.export.export(model, (x,)).run_decompositions({})`; converting a
`torch.jit.trace` fails with numpy 2.x (`only 0-dimensional arrays can be converted to Python
scalars` in the `aten::Int` cast, seen with coremltools 9.0). Input and output stay float32 tensors (the same
normalised NCHW array every edgevit target takes); the preprocessing lives in the model's
user-defined metadata and the input description.

Nothing runs a Core ML model on Linux. What is verified here, after every export: the package loads,
its MIL program reloads through coremltools' own op definitions, every op exists for the deployment
target, the I/O names/shapes/dtypes and the preprocessing metadata are right. Prediction is macOS-only
(runtime `coreml`).
"""
from __future__ import annotations

import shutil
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgevit._quiet import quiet
from edgevit.backends.base import ExportRequest, ExportResult
from edgevit.errors import ConfigError, ExportError, UnavailableError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
META_PREFIX = "edgevit."
DEFAULT_DEPLOYMENT = {"fp32": "iOS16", "fp16": "iOS16", "int8": "iOS16", "w8a8": "iOS17"}
INT8_MODES = ("auto", "w8", "w8a8")  # auto: W8A8 when calibration images are given, else weights only


def _quiet() -> Any:
    """coremltools' import chatter and progress bars, silenced for one block."""
    return quiet("coremltools", "torch", "torchao", stderr=True)


def import_coremltools() -> Any:
    """Import coremltools quietly, or raise UnavailableError naming the extra."""
    try:
        with _quiet():
            import coremltools as ct
    except ImportError:
        raise UnavailableError("coremltools is not installed: pip install 'edgevit[coreml]'") from None
    return ct


def deployment_target(ct: Any, name: str) -> Any:
    try:
        return getattr(ct.target, name)
    except AttributeError:
        names = ", ".join(t.name for t in ct.target if t.value >= ct.target.iOS15.value)
        raise ConfigError(f"unknown Core ML deployment target {name!r}; choose one of: {names}") from None


def _convert(ct: Any, source: Any, req: ExportRequest, precision: str, target: Any) -> Any:
    import numpy as np

    kwargs: dict[str, Any] = dict(
        convert_to="mlprogram",
        inputs=[ct.TensorType(name=INPUT_NAME, shape=tuple(req.example.shape), dtype=np.float32)],
        outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        minimum_deployment_target=target,
    )
    with _quiet():
        return ct.convert(source, **kwargs)


def _exported_program(req: ExportRequest) -> Any:
    import torch

    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(req.model.eval(), (req.example,)).run_decompositions({})
    except Exception as exc:
        raise ExportError(f"torch.export failed: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _describe(ml: Any, req: ExportRequest, facts: dict[str, Any]) -> None:
    """Preprocessing and provenance in the model's own metadata (what Xcode and apps read)."""
    mean = ", ".join(f"{m:g}" for m in req.mean)
    std = ", ".join(f"{s:g}" for s in req.std)
    ml.author = "edgevit"
    ml.short_description = f"{req.model_name} ({req.precision}) image classifier exported by edgevit"
    ml.input_description[INPUT_NAME] = (
        f"float32 NCHW {tuple(req.example.shape)} RGB image: resize, centre-crop to {req.img_size}, "
        f"x/255, subtract mean ({mean}), divide by std ({std})"
    )
    ml.output_description[OUTPUT_NAME] = "class logits (apply softmax for probabilities)"
    md = ml.user_defined_metadata
    md[META_PREFIX + "model"] = req.model_name
    md[META_PREFIX + "precision"] = req.precision
    md[META_PREFIX + "img_size"] = str(req.img_size)
    md[META_PREFIX + "layout"] = "NCHW"
    md[META_PREFIX + "color"] = "RGB"
    md[META_PREFIX + "scale"] = str(1 / 255)
    md[META_PREFIX + "mean"] = mean
    md[META_PREFIX + "std"] = std
    if "int8_mode" in facts:
        md[META_PREFIX + "int8"] = facts["int8_mode"]


def export_coreml(req: ExportRequest) -> ExportResult:
    """Convert the deploy form to an ML program, quantize if asked, describe it, save, check statically."""
    ct = import_coremltools()
    out = Path(req.output)
    facts: dict[str, Any] = {"format": "Core ML ML program (.mlpackage)", "coremltools": ct.__version__}
    if req.precision not in ("fp16", "fp32", "int8"):
        raise ExportError(f"coreml has no {req.precision}; it offers fp16, fp32, int8")
    try:
        if req.precision == "int8":
            ml = _export_int8(ct, req, facts)
        else:
            name = str(req.options.get("deployment_target") or DEFAULT_DEPLOYMENT[req.precision])
            target = deployment_target(ct, name)
            ml = _convert(ct, _exported_program(req), req, req.precision, target)
            facts["compute_precision"] = req.precision
            facts["deployment_target"] = name
        facts["source_graph"] = facts.get("source_graph", "torch.export + run_decompositions({})")
        _describe(ml, req, facts)
        with _quiet():
            ml.save(str(out))
        report = inspect_mlpackage(out)
        problems = check_mlpackage(report, req)
        if problems:
            raise ExportError("Core ML package check failed: " + "; ".join(problems))
    except BaseException as exc:
        if out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
        if isinstance(exc, (ExportError, ConfigError, UnavailableError)) or not isinstance(exc, Exception):
            raise
        raise ExportError(f"Core ML conversion failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    facts["static_checks"] = {
        "ops_supported_for_target": True,
        "mil_reload": report["mil_reload"],
        "io": report["io"],
        "op_histogram": report["op_histogram"],
        "predicted_here": False,
        "why_not_predicted": "Core ML runs only on macOS",
    }
    return ExportResult(artifact=out, metadata=facts)


def _export_int8(ct: Any, req: ExportRequest, facts: dict[str, Any]) -> Any:
    """W8A8 when asked (or auto with calibration images) and it converts; otherwise weight-only int8."""
    from edgevit.backends.coreml.quantize import calibrate_w8a8, weight_int8

    mode = str(req.options.get("coreml_int8", "auto"))
    if mode not in INT8_MODES:
        raise ConfigError(f"unknown Core ML int8 mode {mode!r}; choose one of: {', '.join(INT8_MODES)}")
    if mode == "w8a8" and req.calib is None:
        raise ConfigError("Core ML W8A8 needs calibration images: pass --calib-data DIR (or use weights-only int8)")
    if mode in ("auto", "w8a8") and req.calib is not None:
        name = str(req.options.get("deployment_target") or DEFAULT_DEPLOYMENT["w8a8"])
        target = deployment_target(ct, name)
        try:
            with _quiet():
                traced, qfacts = calibrate_w8a8(req.model, req.example, req.calib)
            ml = _convert(ct, traced, req, "fp16", target)
            facts.update(qfacts)
            facts.update(int8_mode="w8a8", deployment_target=name, compute_precision="fp16",
                         source_graph="coremltools.optimize.torch LinearQuantizer -> torch.jit.trace")
            return ml
        except Exception as exc:
            if mode == "w8a8":
                raise ExportError(f"Core ML W8A8 failed: {type(exc).__name__}: {_first_line(exc)}") from exc
            facts["w8a8_fallback"] = (
                f"W8A8 did not convert here ({type(exc).__name__}: {_first_line(exc)[:200]}); "
                "fell back to weight-only int8"
            )
    name = str(req.options.get("deployment_target") or DEFAULT_DEPLOYMENT["int8"])
    target = deployment_target(ct, name)
    ml = _convert(ct, _exported_program(req), req, "fp16", target)
    with _quiet():
        ml, qfacts = weight_int8(ml)
    facts.update(qfacts)
    facts.update(int8_mode="w8", deployment_target=name, compute_precision="fp16")
    return ml


# ------------------------------------------------------------------------------------ static checks


def _spec_version_name(ct: Any, version: int) -> str:
    for t in ct.target:
        if t.value == version:
            return t.name
    return f"specification {version}"


def op_supported(op_type: str, spec_version: int) -> bool:
    """Whether coremltools registers `op_type` for this specification version (or an earlier one)."""
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

    versions = SSAOpRegistry.core_ops.get(op_type)
    return bool(versions) and any(v.value <= spec_version for v in versions)


def _walk_ops(block: Any, opset: str) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk_ops(inner, opset)


def _feature(f: Any) -> dict[str, Any]:
    arr = f.type.multiArrayType
    from coremltools.proto import FeatureTypes_pb2 as ft

    return {
        "name": f.name,
        "shape": [int(d) for d in arr.shape],
        "dtype": ft.ArrayFeatureType.ArrayDataType.Name(arr.dataType),
        "description": f.shortDescription,
    }


def inspect_mlpackage(path: Path) -> dict[str, Any]:
    """Static facts of an .mlpackage, readable on any OS: spec version and deployment target, I/O,
    MIL op histogram, ops not supported by the target, metadata, and whether the MIL program reloads
    through coremltools' op definitions (which re-runs type inference for every op)."""
    ct = import_coremltools()
    path = Path(path)
    with _quiet():
        spec = ct.utils.load_spec(str(path))
    if not spec.HasField("mlProgram"):
        raise ExportError(f"{path.name} is not an ML program (spec type {spec.WhichOneof('Type')})")
    main = spec.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    hist = Counter(op.type for op in _walk_ops(block, main.opset))
    version = int(spec.specificationVersion)
    unsupported = sorted(op for op in hist if not op_supported(op, version))
    weights = path / "Data" / "com.apple.CoreML" / "weights"
    try:
        from coremltools.converters.mil.frontend.milproto.load import load as mil_load

        with _quiet():
            mil_load(spec, version, str(weights))
        reload = "ok"
    except Exception as exc:  # report, do not crash inspection
        reload = f"failed: {type(exc).__name__}: {_first_line(exc)[:200]}"
    return {
        "specification_version": version,
        "deployment_target": _spec_version_name(ct, version),
        "opset": main.opset,
        "inputs": {f.name: [int(d) for d in f.type.multiArrayType.shape] for f in spec.description.input},
        "outputs": {f.name: [int(d) for d in f.type.multiArrayType.shape] for f in spec.description.output},
        "io": {"inputs": [_feature(f) for f in spec.description.input],
               "outputs": [_feature(f) for f in spec.description.output]},
        "op_count": int(sum(hist.values())),
        "nodes": int(sum(hist.values())),
        "op_histogram": dict(hist.most_common()),
        "unsupported_ops": unsupported,
        "mil_reload": reload,
        "metadata": dict(spec.description.metadata.userDefined),
        "author": spec.description.metadata.author,
    }


def check_mlpackage(report: dict[str, Any], req: ExportRequest) -> list[str]:
    """Everything Linux can verify about an exported package; returns the problems (empty = fine)."""
    problems: list[str] = []
    if report["unsupported_ops"]:
        problems.append(f"ops not supported on {report['deployment_target']}: {', '.join(report['unsupported_ops'])}")
    if report["mil_reload"] != "ok":
        problems.append(f"MIL program does not reload: {report['mil_reload']}")
    want_in = [int(d) for d in req.example.shape]
    ins = report["io"]["inputs"]
    if [i["name"] for i in ins] != [INPUT_NAME] or ins[0]["shape"] != want_in or ins[0]["dtype"] != "FLOAT32":
        problems.append(f"input is {ins}, expected {INPUT_NAME} FLOAT32 {want_in}")
    outs = report["io"]["outputs"]
    if [o["name"] for o in outs] != [OUTPUT_NAME] or outs[0]["dtype"] != "FLOAT32":
        problems.append(f"output is {outs}, expected {OUTPUT_NAME} FLOAT32")
    elif outs[0]["shape"] and outs[0]["shape"][0] != want_in[0]:
        problems.append(f"output batch {outs[0]['shape'][0]} != input batch {want_in[0]}")
    md = report["metadata"]
    for key, want in (("mean", req.mean), ("std", req.std)):
        got = md.get(META_PREFIX + key, "")
        try:
            ok = [round(float(v), 6) for v in got.split(",")] == [round(float(v), 6) for v in want]
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"metadata {META_PREFIX}{key} is {got!r}, expected {list(want)}")
    if md.get(META_PREFIX + "img_size") != str(req.img_size):
        problems.append(f"metadata {META_PREFIX}img_size is {md.get(META_PREFIX + 'img_size')!r}")
    return problems
