"""Every model family's `tiny()` in deploy form, for target tests (TorchScript, Core ML, ...).

FcaFormer/CabViT at their own random init collapse to logits ~1e-19 (layer scale 1e-6),
which makes int8 comparisons meaningless; `lively=True` sets every layer-scale `gamma*` to 1 and
re-estimates BatchNorm statistics on the embedded photos, so activations carry signal. The function
computed is still the family's own architecture.
"""
from __future__ import annotations

import importlib
from functools import cache

import numpy as np
import torch
from torch import nn

FAMILIES = ("casvit", "stvit", "cabvit", "fcaformer")
IMG = 64
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@cache
def _images() -> np.ndarray:
    from edgevit.quantize.data import embedded_eval_images

    return embedded_eval_images(IMG, MEAN, STD)


def images(n: int = 4) -> np.ndarray:
    """n real photos, centre-cropped and normalised (deterministic)."""
    return _images()[:n]


def tiny_deployed(family: str, *, lively: bool = False) -> nn.Module:
    """`edgevit.models.<family>.tiny()` (seed 0) -> deploy form, eval mode."""
    from edgevit.rewrite import deploy

    mod = importlib.import_module(f"edgevit.models.{family}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = mod.tiny(num_classes=10, img_size=IMG).eval()
    if lively:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.rsplit(".", 1)[-1].startswith("gamma"):
                    p.fill_(1.0)
            bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            for bn in bns:  # re-estimate BatchNorm statistics on real photos (cumulative average)
                bn.reset_running_stats()
                bn.momentum = None
                bn.train()
            if bns:
                model(torch.from_numpy(_images()))
            model.eval()
    return deploy(model).eval()


def reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
