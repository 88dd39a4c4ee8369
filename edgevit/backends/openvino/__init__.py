"""OpenVINO backend: the `openvino` export target (IR directory, fp32/fp16/int8) and the `openvino`
runtime (CPU plugin; runs IR and the onnx target's .onnx files). Registering both rows is all this
module does; openvino and nncf are imported only when an artifact is exported, run or inspected.
"""
from __future__ import annotations

from edgevit.backends.openvino.export import export_openvino, inspect_openvino
from edgevit.backends.openvino.runner import EXTRA, OpenVinoRunner, describe, probe
from edgevit.exporters.targets import Target, register_target
from edgevit.runtimes.base import RuntimeSpec, register_runtime

OPENVINO = register_target(
    Target(
        key="openvino",
        title="OpenVINO IR",
        suffix=".openvino",
        precisions=("fp32", "fp16", "int8"),
        int8="NNCF post-training W8A8 (transformer preset) on calibration images; ops whose int8 breaks "
        "compilation or the accuracy budget, or costs more than float by OpenVINO's per-node counters, "
        "kept float; refused when slower than fp32",
        runtime="openvino",
        extra=EXTRA,
        exporter=export_openvino,
        requires=("openvino", "nncf", "onnx", "onnxscript"),
        presets=("performance", "mixed"),
        dynamic_batch=True,
        notes=(
            "directory NAME.openvino/ with model.xml + model.bin, converted from edgevit's fp32 ONNX; "
            "fp16 = fp16 weights, computed in the CPU's native half precision (bf16/f16) where it has one"
        ),
        inspect=inspect_openvino,
    )
)

OPENVINO_RUNTIME = register_runtime(
    RuntimeSpec(key="openvino", title="OpenVINO (CPU)", extra=EXTRA, runner=OpenVinoRunner, probe=probe,
                describe=describe, reads=("onnx",))
)

__all__ = ["OPENVINO", "OPENVINO_RUNTIME", "OpenVinoRunner", "export_openvino", "inspect_openvino"]
