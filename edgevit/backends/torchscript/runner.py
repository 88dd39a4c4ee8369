"""PyTorch lite-interpreter runner for `.ptl` files (the runtime TorchScript-mobile apps embed).

int8 artifacts repack their weights for the quantized engine at load time, so the runner sets the
engine the artifact was exported for (stored inside the .ptl) unless `qengine` is given, and puts
torch's process-wide engine back on `close`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgevit.errors import ExportError
from edgevit.backends.base import Availability, Runner


class TorchScriptLiteRunner(Runner):
    """Loads a .ptl with `torch.jit.mobile._load_for_lite_interpreter`; options: `qengine`."""

    key = "torchscript-lite"
    option_keys = ("qengine",)

    def load(self, path: Path) -> None:
        import torch
        from torch.jit.mobile import _load_for_lite_interpreter

        from edgevit.backends.torchscript.export import read_extra

        self._engine_before = torch.backends.quantized.engine
        self._threads_before = torch.get_num_threads()
        meta = read_extra(Path(path))
        engine = self.options.get("qengine") or meta.get("qengine")
        if engine:
            if engine not in torch.backends.quantized.supported_engines:
                raise ExportError(f"{Path(path).name} was packed for the {engine} engine, which this torch lacks")
            torch.backends.quantized.engine = str(engine)
        if self.threads:
            torch.set_num_threads(int(self.threads))
        try:
            self.module = _load_for_lite_interpreter(str(path))
        except Exception as exc:  # RuntimeError from the lite interpreter's C++ loader
            raise ExportError(
                f"the lite interpreter cannot load {Path(path).name}: {str(exc).strip().splitlines()[0]}"
            ) from None

    def infer(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().float().numpy()

    def close(self) -> None:
        import torch

        self.module = None
        if hasattr(self, "_engine_before"):
            torch.backends.quantized.engine = self._engine_before
            torch.set_num_threads(self._threads_before)


def probe() -> Availability:
    import importlib.util

    from edgevit.versions import package_version

    if importlib.util.find_spec("torch") is None:
        return Availability(False, reason="torch is not installed: pip install edgevit")
    return Availability(True, package_version("torch"))
