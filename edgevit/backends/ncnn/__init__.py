"""ncnn: the deploy form traced and converted by pnnx into `NAME.ncnn/` (param, bin, manifest), fp32, fp16
storage or int8 in ncnn's own format written from edgevit's calibration; run by ncnn's Python binding
(the Cortex-A17's runtime: ncnn has armv7l wheels)."""
from __future__ import annotations

from edgevit.backends._registry import Backend, Runtime, register_backend
from edgevit.backends.ncnn.export import NCNN_INT8_NOTE, export_ncnn
from edgevit.backends.ncnn.param import inspect_ncnn
from edgevit.backends.ncnn.quantize import CALIB_METHODS
from edgevit.backends.ncnn.runner import NcnnRunner, probe

NCNN = Runtime(key="ncnn", title="ncnn", runner=NcnnRunner, probe=probe, extra="ncnn", dists=("ncnn",))

BACKEND = register_backend(Backend(
    key="ncnn",
    title="ncnn",
    suffix=".ncnn",
    precisions=("fp32", "fp16", "int8"),
    int8=NCNN_INT8_NOTE,
    extra="ncnn",
    export=export_ncnn,
    runtime=NCNN,
    requires=("pnnx", "ncnn"),
    calib_methods=CALIB_METHODS,
    dynamic_batch=False,
    notes=(
        "directory NAME.ncnn/ with model.param, model.bin, model.json; pnnx conversion of the "
        "deploy form (q/k/v split, no rank-5 reshapes); no batch axis, the runner loops over rows; "
        "fp16 = fp16 weight storage, fp16 arithmetic only where the CPU has it"
    ),
    inspect=inspect_ncnn,
))
