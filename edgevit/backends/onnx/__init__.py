"""ONNX: the dynamo exporter's graph (opset 20), fp16 with float32 I/O, int8 by ONNX Runtime static
QDQ with the op choices that keep ViTs accurate; run by ONNX Runtime's CPU provider."""
from __future__ import annotations

from edgevit.backends._registry import Backend, Runtime, register_backend
from edgevit.backends.onnx.export import export_onnx, inspect_onnx
from edgevit.backends.onnx.quantize import CALIB_METHODS, PRESETS
from edgevit.backends.onnx.runner import OnnxRuntimeRunner, probe

ONNXRUNTIME = Runtime(
    key="onnxruntime", title="ONNX Runtime (CPU)", runner=OnnxRuntimeRunner, probe=probe, extra="onnx",
    dists=("onnxruntime", "onnx"),
)

BACKEND = register_backend(Backend(
    key="onnx",
    title="ONNX (ONNX Runtime)",
    suffix=".onnx",
    precisions=("fp32", "fp16", "int8"),
    int8="static W8A8 QDQ (per-channel weights; Conv/MatMul/Gemm, and Add/Mul/Sigmoid where they measure "
    "faster, quantized; projections write float; LayerNorm/Softmax/GELU float), calibrated on images; "
    "nodes whose int8 measured slower in ONNX Runtime's per-node profile kept float within the accuracy "
    "budget; refused when slower than fp32",
    extra="onnx",
    export=export_onnx,
    runtime=ONNXRUNTIME,
    requires=("onnx", "onnxruntime", "onnxscript"),
    presets=tuple(PRESETS),
    calib_methods=CALIB_METHODS,
    dynamic_batch=True,
    opsets=(17, 23),  # LayerNormalization needs 17; ONNX Runtime 1.32 runs up to 23
    notes="dynamo exporter by default (options exporter=torchscript for the legacy one)",
    inspect=inspect_onnx,
))
