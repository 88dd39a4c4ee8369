"""TensorRT int8 entropy calibrator over the shared CalibrationSet, with a calibration cache.

The calibrator is the implicit-quantization path (`IInt8EntropyCalibrator2`): TensorRT runs the fp32
network on these images and picks per-tensor scales. TensorRT 10 deprecates it in favour of explicit
Q/DQ, which is edgevit's default for TensorRT int8 (the ONNX `tensorrt` preset); it stays for engines
that need it and for reusing an existing cache (`--option calib_cache=PATH`: read when it exists,
written after a build). `tensorrt` and CUDA are imported here only, when a build asks for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgevit.quantize.data import CalibrationSet


def calibration_batches(calib: "CalibrationSet", batch: int) -> list[np.ndarray]:
    """Full batches of exactly `batch` images (TensorRT's calibrator batch size is fixed)."""
    images = calib.calib
    n = (len(images) // batch) * batch
    return [np.ascontiguousarray(images[i : i + batch], dtype=np.float32) for i in range(0, n, batch)]


def make_entropy_calibrator(calib: "CalibrationSet", *, batch: int, cache: Path | None) -> Any:
    """An `IInt8EntropyCalibrator2` feeding `calib` from a CUDA buffer (torch.cuda owns the memory)."""
    import tensorrt as trt
    import torch

    batches = calibration_batches(calib, batch)
    if not batches:
        from edgevit.errors import CalibrationError

        raise CalibrationError(f"TensorRT calibration needs at least {batch} images, got {len(calib.calib)}")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc]
        """Feeds one batch per `get_batch`; reads/writes the calibration cache when a path is given."""

        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.device = torch.empty(batches[0].shape, dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(batches):
                return None
            self.device.copy_(torch.from_numpy(batches[self.index]))
            torch.cuda.synchronize()
            self.index += 1
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            if cache is not None and cache.is_file():
                return cache.read_bytes()
            return None

        def write_calibration_cache(self, data: Any) -> None:
            if cache is not None:
                from edgevit.files import atomic_write_bytes

                atomic_write_bytes(cache, bytes(data))

    return EntropyCalibrator()
