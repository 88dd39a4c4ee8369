"""Build the reference model an artifact is exported from: a checkpoint, or deterministic seeded weights.

Without a checkpoint a model at its own training init is useless as a reference: FcaFormer and CabViT
start with layer scales of 1e-6, so their logits are ~1e-20 and any artifact "matches" them. The
`seeded` rule instead draws every weight from a seed and the parameter's name (norm scales near 1, layer
scales and tokens ~0.2, small biases), then makes one float64 pass over the embedded photos that rescales
each conv/linear to a fixed output spread and sets each BatchNorm's statistics to what it sees, as a
trained network's are. Logits then have unit scale and depend on the image (at their own init, CAS-ViT
and STViT logits barely depend on the input, FcaFormer's are ~1e-20). The derived statistics are rounded
to 4 digits, so thread counts and CPU kernels cannot change the weights: the same state hash everywhere.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgevit.errors import EdgeVitError

SEEDED = "seeded-v1"  # the rule below; recorded in every artifact record
MODEL_INIT = "model-init"  # the model's own training init under torch.manual_seed (records of schema 1)
INITS = (SEEDED, MODEL_INIT)
DEFAULT_SEED = 0


def _seeded_value(name: str, shape: tuple[int, ...], seed: int, gain: float) -> np.ndarray:
    """The seeded value of one named tensor: its own generator, so the same name gets the same values."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, shape)
    if leaf == "running_mean":
        return rng.normal(0.0, 0.1, shape)
    if leaf == "weight" and len(shape) >= 2:
        return rng.normal(0.0, gain * float(np.prod(shape[1:])) ** -0.5, shape)
    if leaf == "weight":  # a norm's scale
        return 1.0 + rng.normal(0.0, 0.1, shape)
    if leaf == "bias":
        return rng.normal(0.0, 0.05, shape)
    return rng.normal(0.0, 0.2, shape)  # layer scales, learned scale factors, bias tables, tokens


NORMALISE_IMAGES = 14  # every embedded photo: fewer let a few-pixel BatchNorm channel blow up at small sizes
# Branch outputs at a fifth of unit spread: CAS-ViT's gates multiply two signals, and at full spread its
# residual stream turned chaotic (logits 1e12 on crops of the same photos); the classifier keeps unit spread.
BODY_SPREAD = 0.2
VAR_FLOOR = 0.01  # BatchNorm variances at least this share of the layer's median (few pixels at small sizes)


def apply_seeded_weights(model: nn.Module, seed: int = DEFAULT_SEED, img_size: int = 224,
                         mean: Any = (0.485, 0.456, 0.406), std: Any = (0.229, 0.224, 0.225),
                         classifier: tuple[str, ...] = ("head",)) -> nn.Module:
    """Overwrite every parameter and BatchNorm statistic of `model` by the seeded rule (in place)."""
    from edgevit.quantize.data import embedded_eval_images

    targets = dict(model.named_parameters())
    targets |= {k: v for k, v in model.named_buffers() if k.endswith(("running_mean", "running_var"))}
    with torch.no_grad():
        for name, tensor in targets.items():
            tensor.copy_(torch.from_numpy(_seeded_value(name, tuple(tensor.shape), seed, 1.0).astype(np.float32)))
    photos = embedded_eval_images(img_size, mean, std)[:NORMALISE_IMAGES]
    heads = {name for name in classifier if name}
    _normalise_pass(model.eval(), torch.from_numpy(np.ascontiguousarray(photos)), heads)
    return model


def _round(x: torch.Tensor | float, digits: int = 4) -> Any:
    """Round to `digits` significant digits, so float noise (thread counts, CPU kernels) cannot reach
    the weights: the same statistics come out on every machine, and so the same state hash."""
    t = torch.as_tensor(x, dtype=torch.float64)
    scale = torch.pow(10.0, torch.floor(torch.log10(t.abs().clamp_min(1e-30))) - (digits - 1))
    out = torch.round(t / scale) * scale
    return float(out) if out.dim() == 0 else out


def _normalise_pass(model: nn.Module, x: torch.Tensor, heads: set[str]) -> None:
    """One float64 forward pass in which each conv/linear is rescaled to BODY_SPREAD output std (the
    classifier `heads` to 1) and each BatchNorm takes the mean/variance of its input (rounded); each module
    is adjusted on its first call only."""
    seen: set[int] = set()
    names = {id(m): name for name, m in model.named_modules()}

    def hook(mod: nn.Module, inputs: tuple[Any, ...], out: Any) -> Any:
        if id(mod) in seen or not isinstance(out, torch.Tensor):
            return None
        seen.add(id(mod))
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            xin = inputs[0]
            dims = [0, *range(2, xin.dim())]
            var = xin.var(dims, unbiased=False)
            var = var.clamp_min(VAR_FLOOR * float(var.median()))  # a near-constant channel must not blow up
            mod.running_mean.copy_(_round(xin.mean(dims)))
            mod.running_var.copy_(_round(var))
            return nn.functional.batch_norm(xin, mod.running_mean, mod.running_var, mod.weight, mod.bias,
                                            False, 0.0, mod.eps)
        spread = float(out.std())
        if not np.isfinite(spread) or spread == 0:
            return None
        spread = _round(spread / (1.0 if names.get(id(mod)) in heads else BODY_SPREAD))
        mod.weight.div_(spread)
        if getattr(mod, "bias", None) is not None:
            mod.bias.div_(spread)
        return out / spread

    kinds = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model.double()(x.double())
    finally:
        model.float()
        for h in handles:
            h.remove()


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_reference(
    name: str,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    img_size: int | None = None,
    num_classes: int | None = None,
    seed: int = DEFAULT_SEED,
    init: str = SEEDED,
) -> nn.Module:
    """The train-form model in eval mode: from `checkpoint`, else with the seeded weights `init` names."""
    from edgevit.errors import ConfigError
    from edgevit.models import create_model, model_info

    if init not in INITS:
        raise ConfigError(f"unknown weight rule {init!r}; this edgevit knows {', '.join(INITS)}")
    info = model_info(name)
    kwargs: dict[str, Any] = {}
    if img_size is not None and img_size != info.default_cfg.get("img_size") and _accepts(info.factory, "img_size"):
        kwargs["img_size"] = img_size
    if num_classes is not None and num_classes != info.default_cfg.get("num_classes"):
        if not _accepts(info.factory, "num_classes"):
            raise ConfigError(f"{info.name} has a fixed number of classes")
        kwargs["num_classes"] = num_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(info.name, checkpoint=checkpoint, **kwargs)
    if checkpoint is None and init == SEEDED:
        _seed(model, info, seed, img_size or int(info.default_cfg["img_size"]), num_classes)
    return model.eval()


def _seed(model: nn.Module, info: Any, seed: int, img_size: int, num_classes: int | None) -> None:
    """Apply the seeded weights, from edgevit's cache when this model, size and rule were seeded before (the
    float64 pass costs seconds to tens of seconds; the cache key is the source of the model and the rule)."""
    from edgevit.cache import cache_dir, source_digest
    from edgevit.files import atomic_path

    digest = hashlib.sha256((source_digest(info.name) + Path(__file__).read_text()).encode()).hexdigest()[:16]
    path = cache_dir() / "seeded" / f"{info.name}-{img_size}px-{num_classes or 'dflt'}-s{seed}-{digest}.pt"
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
        pass  # not cached yet, or a torn file: compute it again
    cfg = info.default_cfg
    heads = cfg.get("classifier") or "head"
    apply_seeded_weights(model, seed, img_size, cfg["mean"], cfg["std"], (heads,) if isinstance(heads, str) else tuple(heads))
    with contextlib.suppress(EdgeVitError, OSError), atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def state_dict_sha256(model: nn.Module) -> str:
    """Hash of the weights (names, shapes, bytes): proves a rebuilt reference is the exported model."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
