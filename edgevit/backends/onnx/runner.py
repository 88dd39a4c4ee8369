"""ONNX Runtime runner (CPU): threads via intra_op_num_threads, configurable graph optimisation level."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgevit.errors import ExportError
from edgevit.backends.base import Availability, Runner, probe_module

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


class OnnxRuntimeRunner(Runner):
    """Runs an .onnx file on ORT's CPU provider.

    Options: `optimization` (disable|basic|extended|all); `spinning` (default True, ORT's own default):
    False stops idle pool threads from spinning, which in-process A/B comparisons on few cores need,
    or one session's spinning threads steal the cores of the session being timed.
    """

    key = "onnxruntime"
    option_keys = ("optimization", "spinning")

    def load(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        level = str(self.options.get("optimization", "all"))
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
            opts.inter_op_num_threads = 1
        if not self.options.get("spinning", True):
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own types (Fail, InvalidGraph, NotImplemented)
            raise ExportError(f"ONNX Runtime cannot load {Path(path).name}: {str(exc).splitlines()[0]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=self.input_dtype)})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        self.session = None


def probe() -> Availability:
    return probe_module("onnxruntime", "onnx")
