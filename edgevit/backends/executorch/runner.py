"""ExecuTorch runner: loads a `.pte` into `executorch.runtime` and runs its `forward` method.

`threads` resizes ExecuTorch's shared threadpool (XNNPACK's workers) through the pybindings'
`_unsafe_reset_threadpool`: the pool is process-wide, so the last runner opened sets it. Programs are
exported with static shapes: when the input batch differs from the program's, the runner feeds rows
one at a time (a batch-1 program) or fails with a clear message. fp16 programs take and return half
tensors; the runner casts, callers always see float32.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgevit.errors import ConfigError
from edgevit.backends.base import Availability, Runner, probe_module

_DTYPES = {5: "float16", 6: "float32", 15: "bfloat16"}  # ExecuTorch ScalarType codes


class ExecuTorchRunner(Runner):
    key = "executorch"

    def __init__(self, *, threads: int | None = None, **options: object) -> None:
        super().__init__(threads=threads, **options)
        self.program: Any = None
        self.method: Any = None
        self.input_shape: tuple[int, ...] = ()
        self.input_dtype = "float32"

    def load(self, path: Path) -> None:
        import torch  # noqa: F401  (executorch's pybindings expect torch loaded first)
        from executorch.runtime import Runtime

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"ExecuTorch program not found: {path}")
        if self.threads:
            from executorch.extension.pybindings import portable_lib

            reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
            if reset is not None:
                reset(int(self.threads))
        runtime = Runtime.get()
        self.program = runtime.load_program(path)
        if "forward" not in self.program.method_names:
            raise ConfigError(f"{path.name} has no forward method (has {sorted(self.program.method_names)})")
        self.method = self.program.load_method("forward")
        meta = self.method.metadata.input_tensor_meta(0)
        self.input_shape = tuple(int(d) for d in meta.sizes())
        self.input_dtype = _DTYPES.get(int(meta.dtype()), "float32")

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.input_dtype != "float32":
            t = t.to(getattr(torch, self.input_dtype))
        out = self.method.execute([t])[0]
        return out.float().numpy().copy()

    def infer(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if tuple(x.shape) == self.input_shape:
            return self._run(x)
        if self.input_shape and self.input_shape[0] == 1 and tuple(x.shape[1:]) == self.input_shape[1:]:
            return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        raise ConfigError(f"this .pte takes input {list(self.input_shape)}, got {list(x.shape)}")

    def close(self) -> None:
        self.method = None
        self.program = None


def probe() -> Availability:
    return probe_module("executorch", "executorch")
