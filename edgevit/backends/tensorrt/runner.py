"""TensorRT runner: deserialises a plain TensorRT plan, runs it with `execute_async_v3` on torch.cuda
buffers, and times it with CUDA events (`time_ms`).

Needs the `tensorrt` package with NVIDIA's libraries and a CUDA device. Where either is missing the
probe says which, with the fix, and nothing here is imported (the CLI never crashes on it).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from edgevit.errors import ExportError, UnavailableError
from edgevit.backends.base import Availability, Runner

INSTALL = "pip install 'edgevit[tensorrt]' (NVIDIA's TensorRT 10 libraries) and a CUDA GPU"


def probe() -> Availability:
    """Available only with an importable tensorrt *and* a CUDA device that torch can see."""
    if importlib.util.find_spec("tensorrt") is None:
        return Availability(False, reason=f"tensorrt is not installed: {INSTALL}")
    try:
        import tensorrt as trt
    except Exception as exc:  # the PyPI placeholder or missing libnvinfer: import fails
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Availability(False, reason=f"tensorrt does not import ({first}): {INSTALL}")
    version = str(getattr(trt, "__version__", ""))
    if int(version.split(".")[0] or 0) < 10:
        return Availability(False, version, f"TensorRT {version} is too old: edgevit needs TensorRT >= 10")
    try:
        import torch

        if not torch.cuda.is_available():
            return Availability(False, version, "no CUDA device: TensorRT builds and runs on an NVIDIA GPU "
                                "(and a torch build with CUDA, which edgevit uses for buffers and timing)")
    except Exception as exc:
        return Availability(False, version, f"cannot query CUDA: {exc}")
    return Availability(True, version)


def require() -> None:
    avail = probe()
    if not avail.available:
        raise UnavailableError(f"TensorRT is unavailable here: {avail.reason}")


_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
                 "BOOL": "bool", "BF16": "bfloat16"}


class TensorRTRunner(Runner):
    """One engine, one execution context; inputs are host NCHW float32 arrays (dynamic batch allowed)."""

    key = "tensorrt"

    def load(self, path: Path) -> None:
        import tensorrt as trt
        import torch

        self._torch = torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise ExportError(f"TensorRT cannot deserialize {Path(path).name} (built by another TensorRT "
                              "version or for another GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: getattr(torch, _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name]) for n in names}
        self.stream = torch.cuda.Stream()

    def _run(self, x: Any) -> Any:
        """Enqueue one inference on device tensor `x`; returns the device output (not synchronised)."""
        torch = self._torch
        name = self.inputs[0]
        x = x.to(self.dtypes[name]).contiguous()
        self.context.set_input_shape(name, tuple(x.shape))
        self.context.set_tensor_address(name, int(x.data_ptr()))
        out_name = self.outputs[0]
        out = torch.empty(tuple(self.context.get_tensor_shape(out_name)), dtype=self.dtypes[out_name], device="cuda")
        self.context.set_tensor_address(out_name, int(out.data_ptr()))
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ExportError("TensorRT execute_async_v3 failed")
        self._keep = (x, out)  # buffers must outlive the enqueued work
        return out

    def infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.cuda.stream(self.stream):
            dev = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda(non_blocking=False)
            out = self._run(dev)
        self.stream.synchronize()
        return out.float().cpu().numpy()

    def time_ms(self, x: np.ndarray, *, runs: int = 100, warmup_ms: float = 200.0) -> list[float]:
        """Device time per inference (input already on the GPU), by CUDA events, after a timed warm-up."""
        torch = self._torch
        dev = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        spent = 0.0
        while spent < warmup_ms:  # warm-up by time, as trtexec does
            start.record(self.stream)
            self._run(dev)
            end.record(self.stream)
            end.synchronize()
            spent += start.elapsed_time(end)
        times = []
        for _ in range(runs):
            start.record(self.stream)
            self._run(dev)
            end.record(self.stream)
            end.synchronize()
            times.append(float(start.elapsed_time(end)))
        return times

    def close(self) -> None:
        self.context = None
        self.engine = None
        self._keep = None
