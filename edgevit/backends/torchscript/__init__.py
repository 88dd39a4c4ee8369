"""TorchScript mobile: the traced deploy form saved for the lite interpreter (.ptl), int8 as dynamic
int8 linears; run by PyTorch's lite interpreter."""
from __future__ import annotations

from edgevit.backends._registry import Backend, Runtime, register_backend
from edgevit.backends.torchscript.export import export_torchscript, inspect_ptl
from edgevit.backends.torchscript.runner import TorchScriptLiteRunner, probe

LITE_INTERPRETER = Runtime(key="torchscript-lite", title="PyTorch lite interpreter", runner=TorchScriptLiteRunner,
                           probe=probe, extra="mobile", dists=("torch",))

BACKEND = register_backend(Backend(
    key="torchscript",
    title="TorchScript mobile (lite interpreter)",
    suffix=".ptl",
    precisions=("fp32", "int8"),
    int8="dynamic int8 nn.Linear (qnnpack engine; convs stay fp32)",
    extra="mobile",
    export=export_torchscript,
    runtime=LITE_INTERPRETER,
    requires=("torch",),
    calib_methods=(),
    dynamic_batch=False,
    notes="optimize_for_mobile needs a torch with XNNPACK; without it the module is frozen only. "
    "The lite interpreter is in maintenance; ExecuTorch is its successor.",
    inspect=inspect_ptl,
))
