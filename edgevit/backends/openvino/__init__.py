"""OpenVINO: edgevit's fp32 ONNX converted to an IR directory `NAME.openvino/` (model.xml + model.bin),
fp32, fp16-compressed weights or int8 by NNCF with edgevit's accuracy budget and latency checks; run by
OpenVINO's CPU plugin, which also runs the onnx target's `.onnx` artifacts. openvino and nncf are
imported only when an artifact is exported, run or inspected."""
from __future__ import annotations

from edgevit.backends._registry import Backend, Runtime, register_backend
from edgevit.backends.openvino.export import export_openvino, inspect_openvino
from edgevit.backends.openvino.runner import EXTRA, OpenVinoRunner, describe, probe

OPENVINO = Runtime(
    key="openvino", title="OpenVINO (CPU)", runner=OpenVinoRunner, probe=probe, extra=EXTRA,
    dists=("openvino", "nncf"), also_runs=(".onnx",), describe=describe,
)

BACKEND = register_backend(Backend(
    key="openvino",
    title="OpenVINO IR",
    suffix=".openvino",
    precisions=("fp32", "fp16", "int8"),
    int8="NNCF post-training W8A8 (transformer preset) on calibration images; ops whose int8 breaks "
    "compilation or the accuracy budget, or costs more than float by OpenVINO's per-node counters, "
    "kept float; refused when slower than fp32",
    extra=EXTRA,
    export=export_openvino,
    runtime=OPENVINO,
    requires=("openvino", "nncf", "onnx", "onnxscript"),
    presets=("performance", "mixed"),
    calib_methods=("minmax",),
    dynamic_batch=True,
    opsets=(17, 23),  # the IR is converted from edgevit's ONNX; OpenVINO's ONNX frontend reads these
    notes=(
        "directory NAME.openvino/ with model.xml + model.bin, converted from edgevit's fp32 ONNX; "
        "fp16 = fp16 weights, computed in the CPU's native half precision (bf16/f16) where it has one"
    ),
    inspect=inspect_openvino,
))
