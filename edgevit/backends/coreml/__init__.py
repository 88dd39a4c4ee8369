"""Core ML: an ML program (.mlpackage) from torch.export, fp16 by default, int8 weights or W8A8;
predicted only on macOS, checked statically (ops, I/O, metadata) everywhere."""
from __future__ import annotations

from edgevit.backends._registry import Backend, Runtime, register_backend
from edgevit.backends.coreml.export import export_coreml, inspect_mlpackage
from edgevit.backends.coreml.runner import CoreMLRunner, probe

COREML = Runtime(key="coreml", title="Core ML (macOS)", runner=CoreMLRunner, probe=probe, extra="coreml",
                 dists=("coremltools",))

BACKEND = register_backend(Backend(
    key="coreml",
    title="Core ML (ML program)",
    suffix=".mlpackage",
    precisions=("fp16", "fp32", "int8"),
    int8="int8 per-channel weights (fp16 activations); W8A8 calibrated in PyTorch where it converts",
    extra="coreml",
    export=export_coreml,
    runtime=COREML,
    default_precision="fp16",
    requires=("coremltools",),
    dynamic_batch=False,
    notes="Converted from torch.export. Prediction needs macOS; on Linux the package, its ops for the "
    "deployment target, I/O and metadata are checked.",
    inspect=inspect_mlpackage,
))
