"""PT2E static int8 for ExecuTorch/XNNPACK: `XNNPACKQuantizer` (symmetric int8 activations, per-channel
int8 weights), observers calibrated on the same calibration images as the ONNX int8 export.

`torch.ao.quantization` PT2E is deprecated in torch 2.13; the maintained copy lives in torchao
(`torchao.quantization.pt2e`), which executorch pulls in. XNNPACK then fuses the Q/DQ pairs around
conv/linear/add/... into int8 kernels when the graph is lowered; ops it does not quantize
(LayerNorm, softmax, GELU in this version) stay fp32 between dequantize and quantize nodes.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from edgevit import progress
from edgevit.errors import CalibrationError


def calibration_batches(calib: Any, batch: int = 1, limit: int | None = None) -> Iterator["Any"]:
    """Yield float32 NCHW torch tensors of `batch` rows from a CalibrationSet (or any iterable of arrays).

    Accepts what the calibration module offers: `.batches(n)`, an `.images` / `.arrays` array, or an
    iterable of (N)CHW arrays or tensors. Static-shape programs need exactly `batch` rows per call.
    """
    import torch

    if calib is None:
        raise CalibrationError("int8 needs calibration images (a CalibrationSet); none were given")
    if hasattr(calib, "batches"):
        source: Iterable[Any] = calib.batches(batch)
    elif hasattr(calib, "images") and not callable(calib.images):
        source = [calib.images]
    elif hasattr(calib, "arrays") and not callable(calib.arrays):
        source = [calib.arrays]
    else:
        source = calib
    rows: list[np.ndarray] = []
    for item in source:
        arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        arr = arr.astype(np.float32, copy=False)
        rows.extend(arr if arr.ndim == 4 else arr[None])
    if limit is not None:
        rows = rows[:limit]
    if len(rows) < batch:
        raise CalibrationError(f"calibration set has {len(rows)} image(s), fewer than batch {batch}")
    for i in range(0, len(rows) - batch + 1, batch):
        yield torch.from_numpy(np.stack(rows[i : i + batch]))


def quantize_xnnpack(model: Any, example: Any, calib: Any, *, per_channel: bool = True) -> tuple[Any, int]:
    """Export, insert XNNPACK observers, run the calibration images, convert to Q/DQ.

    Returns (converted graph module, number of calibration images used).
    """
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    captured = torch.export.export(model.eval(), (example,), strict=False).module()
    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
    prepared = prepare_pt2e(captured, quantizer)
    seen = 0
    total = len(getattr(calib, "calib", ())) or None
    with torch.no_grad(), progress.step(f"calibrate on {total or 'the'} images", total=total) as advance:
        for xb in calibration_batches(calib, batch=int(example.shape[0])):
            prepared(xb)
            seen += int(xb.shape[0])
            advance(int(xb.shape[0]))
    if seen == 0:
        raise CalibrationError("no calibration batch reached the observers")
    return convert_pt2e(prepared), seen
