"""ExecuTorch: torch.export lowered to an XNNPACK-delegated `.pte`, int8 by PT2E with XNNPACKQuantizer;
run by ExecuTorch's runtime (the supported successor of the lite interpreter)."""
from __future__ import annotations

from edgevit.backends._registry import Backend, Runtime, register_backend
from edgevit.backends.executorch.export import ET_INT8_NOTE, export_executorch, inspect_pte
from edgevit.backends.executorch.runner import ExecuTorchRunner, probe

EXECUTORCH = Runtime(key="executorch", title="ExecuTorch (XNNPACK)", runner=ExecuTorchRunner, probe=probe,
                     extra="executorch", dists=("executorch", "torch"))

BACKEND = register_backend(Backend(
    key="executorch",
    title="ExecuTorch (XNNPACK)",
    suffix=".pte",
    precisions=("fp32", "fp16", "int8"),
    int8=ET_INT8_NOTE,
    extra="executorch",
    export=export_executorch,
    runtime=EXECUTORCH,
    requires=("executorch",),
    dynamic_batch=False,
    notes=(
        "torch.export -> XNNPACK-delegated .pte; static shapes (the runner loops over rows when the "
        "program was exported at batch 1); sidecar has delegated vs not delegated node counts; "
        "fp16 runs on x86 but slower than fp32 (for ARMv8.2+ fp16 cores)"
    ),
    inspect=inspect_pte,
))
