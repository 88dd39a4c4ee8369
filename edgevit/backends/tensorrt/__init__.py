"""TensorRT: a serialized engine built from edgevit's own ONNX with the TensorRT 10 Python API, run
with CUDA events; needs TensorRT's libraries and an NVIDIA GPU (unavailable, with the reason, elsewhere)."""
from __future__ import annotations

from edgevit.backends._registry import Backend, Runtime, register_backend
from edgevit.backends.tensorrt.export import INT8_METHODS, export_tensorrt, inspect_engine
from edgevit.backends.tensorrt.runner import TensorRTRunner, probe

TENSORRT = Runtime(key="tensorrt", title="TensorRT (CUDA)", runner=TensorRTRunner, probe=probe, extra="tensorrt",
                   dists=("tensorrt",))

BACKEND = register_backend(Backend(
    key="tensorrt",
    title="TensorRT engine (NVIDIA GPU)",
    suffix=".engine",
    precisions=("fp32", "fp16", "int8"),
    int8="explicit Q/DQ from the ONNX tensorrt preset (static symmetric s8/s8), or the entropy "
    "calibrator with a cache",
    extra="tensorrt",
    export=export_tensorrt,
    runtime=TENSORRT,
    default_precision="fp16",
    requires=("tensorrt", "onnx", "onnxruntime"),
    presets=("tensorrt",),
    calib_methods=("minmax", "entropy", "percentile"),
    dynamic_batch=True,
    opsets=(17, 20),  # the ONNX handed over: LayerNormalization (17+); TensorRT 10's parser reads up to 20
    notes="Built from edgevit's own ONNX (never ORT-optimised); LayerNorm pinned to fp32 under fp16; "
    "the sidecar holds the equivalent trtexec command. int8 methods: " + ", ".join(INT8_METHODS),
    inspect=inspect_engine,
    requirement="a CUDA GPU",
    probe=probe,
))
