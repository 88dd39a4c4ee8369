"""Core ML int8: weight-only int8 on the ML program, or W8A8 calibrated in PyTorch before conversion.

- Weight int8 (`coremltools.optimize.coreml.linear_quantize_weights`, symmetric, per output channel):
  works on any OS, activations stay fp16. Needs iOS16+ (`constexpr_affine_dequantize`).
- W8A8: activation calibration inside `coremltools.optimize.coreml` needs `MLModel.predict`, i.e.
  macOS. On Linux we calibrate in PyTorch with `coremltools.optimize.torch.quantization.LinearQuantizer`
  (observers only, no training) on the same CalibrationSet every target uses, then convert. The
  finalized model holds real quantized tensors, which `torch.export` cannot trace ("quantized nyi in
  meta tensors"), so that one conversion goes through `torch.jit.trace`. Needs iOS17+ (`quantize`).
  Its fake-quantized accuracy against fp32 (cosine, top-1 agreement on the hold-out images) is
  measured here in PyTorch, since Core ML itself cannot run on Linux.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgevit.quantize.data import CalibrationSet


def weight_int8(mlmodel: Any) -> tuple[Any, dict[str, Any]]:
    """Per-channel symmetric int8 weights on every op with constant weights (conv, linear, matmul)."""
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

    config = OptimizationConfig(
        global_config=OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=2048
        )
    )
    q = linear_quantize_weights(mlmodel, config=config)
    return q, {
        "int8_scheme": "weight-only: int8 per-channel symmetric weights (tensors >= 2048 elements), fp16 activations",
        "activation_quantization": False,
    }


def _agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    a = ref.reshape(len(ref), -1).astype(np.float64)
    b = got.reshape(len(got), -1).astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return {
        "cosine_min": round(float(cos.min()), 6),
        "cosine_mean": round(float(cos.mean()), 6),
        "top1_agreement": round(float((a.argmax(1) == b.argmax(1)).mean()), 4),
        "images": int(len(a)),
    }


def calibrate_w8a8(
    model: "nn.Module", example: "torch.Tensor", calib: "CalibrationSet", *, batch: int = 8
) -> tuple["torch.jit.ScriptModule", dict[str, Any]]:
    """Observers on the calibration images -> finalized quantized torch model -> traced for conversion.

    Returns the traced module and facts (scheme, images used, simulated cosine/top-1 vs fp32 on the
    hold-out images). Raises whatever coremltools raises; the exporter turns that into a fallback note.
    """
    import torch
    from coremltools.optimize.torch.quantization import (
        LinearQuantizer,
        LinearQuantizerConfig,
        ModuleLinearQuantizerConfig,
    )

    # milestones: observers and fake-quant on from step 0, observers never frozen, BN untouched
    config = LinearQuantizerConfig(
        global_config=ModuleLinearQuantizerConfig(
            quantization_scheme="symmetric", milestones=[0, 0, 10**9, 0]
        )
    )
    fp32 = copy.deepcopy(model).eval()
    quantizer = LinearQuantizer(copy.deepcopy(model).eval(), config)
    prepared = quantizer.prepare(example_inputs=(example,), inplace=True)
    quantizer.step()
    prepared.eval()
    shape = tuple(example.shape)
    with torch.no_grad():
        for chunk in calib.batches(batch):
            for i in range(0, len(chunk), shape[0]):  # the traced graph is fixed to the example batch
                x = torch.from_numpy(chunk[i : i + shape[0]])
                if x.shape[0] == shape[0]:
                    prepared(x)
    facts: dict[str, Any] = {
        "int8_scheme": "W8A8: int8 symmetric weights and activations calibrated with "
        "coremltools.optimize.torch LinearQuantizer (observers only), converted via torch.jit.trace",
        "activation_quantization": True,
        "calibration": calib.describe(),
    }
    holdout = calib.holdout if len(calib.holdout) else calib.calib[:16]
    with torch.no_grad():
        ref, sim = [], []
        for i in range(0, len(holdout) - shape[0] + 1, shape[0]):
            x = torch.from_numpy(holdout[i : i + shape[0]])
            ref.append(fp32(x).numpy())
            sim.append(prepared(x).numpy())
    if ref:
        facts["simulated_vs_fp32"] = {**_agreement(np.concatenate(ref), np.concatenate(sim)), "where": "PyTorch fake-quant"}
    final = quantizer.finalize(inplace=False).eval()
    with torch.no_grad():
        traced = torch.jit.trace(final, example, check_trace=False)
    return traced, facts
