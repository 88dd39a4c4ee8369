"""The `onnx` target: fp32 through the dynamo exporter, fp16 with float32 I/O and LayerNorm kept fp32,
int8 through ONNX Runtime static QDQ (`edgevit.backends.onnx.quantize`).

The dynamo exporter is the default because it is the better base for ORT and for QDQ (measured: its
graph quantizes to faster int8 than the TorchScript exporter's); `options={"exporter": "torchscript"}`
selects the TorchScript-based exporter. Both can silently fix
the batch to 1 when a dynamic batch was asked for, so the exported input shape is always checked.
"""
from __future__ import annotations

import collections
import tempfile
import warnings
from pathlib import Path
from typing import Any

from edgevit._quiet import quiet
from edgevit.backends.base import ExportRequest, ExportResult
from edgevit.errors import ExportError

DEFAULT_OPSET = 20  # LayerNormalization (17+) and Gelu (20) as one node each: at 18 GELU is an Erf chain
# that ORT 1.32 does not fuse (+7 ms on fcaformer_l1) and that stays float between int8 ops; TensorRT 10 reads 9-20
EXPORTERS = ("dynamo", "torchscript")
# Kept in fp32 by the fp16 conversion: LayerNorm and the ops of a decomposed LayerNorm overflow or
# lose precision in fp16 (NVIDIA/TensorRT#2564); Softmax's exp is range-sensitive too.
FP16_KEEP_FP32 = ("LayerNormalization", "ReduceMean", "Pow", "Sqrt", "Softmax", "Erf")


def _export_fp32(req: ExportRequest, path: Path) -> dict[str, Any]:
    """Export the deploy-form model to an fp32 ONNX file (single file, no external data)."""
    import onnx
    import torch

    engine = str(req.options.get("exporter", "dynamo"))
    if engine not in EXPORTERS:
        raise ExportError(f"unknown ONNX exporter {engine!r}; choose one of: {', '.join(EXPORTERS)}")
    opset = req.opset or (DEFAULT_OPSET if engine == "dynamo" else 17)
    names = {"input_names": ["input"], "output_names": ["logits"], "opset_version": opset}
    try:
        with quiet("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", stdout=True):
            if engine == "dynamo":
                dyn = ({0: torch.export.Dim("batch", max=4096)},) if req.dynamic_batch else None
                prog = torch.onnx.export(
                    req.model, (req.example,), dynamo=True, dynamic_shapes=dyn, optimize=True,
                    verbose=False, **names,
                )
                proto = prog.model_proto
            else:
                axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if req.dynamic_batch else None
                with tempfile.TemporaryDirectory(prefix="edgevit-ts-") as tmp:
                    f = Path(tmp) / "m.onnx"
                    torch.onnx.export(req.model, (req.example,), str(f), dynamo=False, dynamic_axes=axes,
                                      do_constant_folding=True, **names)
                    proto = onnx.load(str(f))
    except ExportError:
        raise
    except Exception as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ExportError(f"ONNX export ({engine}) failed: {first}") from None
    _check_batch(proto, req)
    got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise ExportError(f"asked for opset {opset}, the {engine} exporter produced opset {got}")
    meta: dict[str, Any] = {"exporter": engine, "opset": opset}
    if req.simplify:
        proto, meta["simplify"] = _simplify(proto)
    onnx.save(proto, str(path))
    return meta


def _check_batch(proto: Any, req: ExportRequest) -> None:
    """Exporters can fix the batch silently (dynamo re-exports at batch 1 when a model derives sizes from
    `len(x)`): the input's first dim must be what was asked."""
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if req.dynamic_batch and not dim.dim_param:
        raise ExportError(
            f"{req.model_name}: the exporter fixed the batch to {dim.dim_value} although a dynamic batch "
            "was asked for (the model derives sizes from the batch); export a fixed --batch instead"
        )
    if not req.dynamic_batch and dim.dim_value != req.batch:
        raise ExportError(f"exported batch is {dim.dim_value or dim.dim_param}, expected {req.batch}")


def _simplify(proto: Any) -> tuple[Any, str]:
    """onnxslim: fewer nodes, same function; skipped (and said so) if it fails. It does not change ORT
    latency by itself (measured), but it gives smaller graphs to other runtimes."""
    try:
        import onnxslim

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before = len(proto.graph.node)
            slim = onnxslim.slim(proto)
        return slim, f"onnxslim {before} -> {len(slim.graph.node)} nodes"
    except Exception as exc:  # a simplifier bug must not block an export that is correct without it
        return proto, f"skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _to_fp16(src: Path, dst: Path, keep: tuple[str, ...]) -> None:
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(
            model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep)
        )
    onnx.save(half, str(dst))


def _set_metadata(path: Path, req: ExportRequest, extra: dict[str, Any]) -> None:
    """Preprocessing and provenance in `metadata_props`, where any ONNX consumer can read them."""
    import onnx

    from edgevit import __version__

    model = onnx.load(str(path))
    props = {
        "edgevit.version": __version__,
        "model": req.model_name,
        "precision": req.precision,
        "input": "input: float32 NCHW RGB, pixels/255 then (x - mean) / std",
        "img_size": str(req.img_size),
        "batch": "dynamic" if req.dynamic_batch else str(req.batch),
        "mean": ",".join(f"{v:g}" for v in req.mean),
        "std": ",".join(f"{v:g}" for v in req.std),
        **{k: str(v) for k, v in extra.items()},
    }
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "edgevit"
    model.producer_version = __version__
    onnx.save(model, str(path))


def export_onnx(req: ExportRequest) -> ExportResult:
    """Exporter contract: write `req.output` (a temporary name owned by the pipeline), return facts."""
    from edgevit.backends.onnx.quantize import default_preset, quantize_onnx

    out = Path(req.output)
    meta: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgevit-onnx-") as tmp:
        fp32 = out if req.precision == "fp32" else Path(tmp) / "fp32.onnx"
        meta.update(_export_fp32(req, fp32))
        if req.precision == "fp16":
            keep = tuple(req.options.get("fp16_keep", FP16_KEEP_FP32))
            _to_fp16(fp32, out, keep)
            meta["fp16"] = {"keep_io_types": True, "kept_fp32_ops": list(keep)}
        elif req.precision == "int8":
            if req.calib is None:
                raise ExportError("int8 needs calibration images (the pipeline passes them)")
            report = quantize_onnx(
                fp32, out, req.calib, method=req.calib_method, preset=req.preset,
                batch=1 if req.dynamic_batch else req.batch, options=req.options.get("quant"),
            )
            meta["int8"] = report.as_dict()
            if report.preset["key"] != default_preset():
                # int8 kernels here are not the target's (AVX2 vs ARM dot-product / TensorRT): verify the
                # QDQ graph's own semantics (unfused DequantizeLinear -> float op), not this host's kernels
                meta["verify_runner_options"] = {"optimization": "basic"}
                meta["verify_note"] = (f"preset {report.preset['key']} verified as unfused QDQ on this "
                                       f"{default_preset()} host; fused-kernel numerics are the target's")
    _set_metadata(out, req, {"opset": meta["opset"], "exporter": meta["exporter"]})
    return ExportResult(artifact=out, metadata=meta)


def inspect_onnx(path: Path) -> dict[str, Any]:
    """Static facts without running: node count, op histogram, I/O shapes, opset, metadata."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"not a readable ONNX file: {path.name}: {str(exc).splitlines()[0]}") from None

    def shape(v: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    ops = collections.Counter(
        (f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type) for n in model.graph.node
    )
    return {
        "nodes": len(model.graph.node),
        "op_histogram": dict(ops.most_common()),
        "inputs": {v.name: shape(v) for v in model.graph.input},
        "outputs": {v.name: shape(v) for v in model.graph.output},
        "opset": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "metadata": {p.key: p.value for p in model.metadata_props},
    }
