"""Load official checkpoints: unwrap the containers they come in, map keys, load strictly, explain mismatches."""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from edgevit.errors import CheckpointError

StateDict = dict[str, torch.Tensor]

# Containers real checkpoints come in, in order of preference (EMA weights are what papers report).
_WRAPPER_KEYS = ("model_ema", "state_dict_ema", "model", "state_dict", "module", "net")


def read_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, object]:
    """Read a checkpoint file safely (tensors and plain containers only)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notices of the safe unpickler
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {p}: {_what_it_is_not(p, exc)}") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {p} holds a {type(obj).__name__}, not a state dict")
    return obj


def _what_it_is_not(path: Path, exc: Exception) -> str:
    """Why a file is no state dict, in our words: torch's own message suggests the unsafe load."""
    import pickle
    import zipfile

    if isinstance(exc, pickle.UnpicklingError):
        if zipfile.is_zipfile(path):
            return ("it holds Python objects besides tensors (a whole pickled model or training state?); "
                    "edgevit loads state dicts only and never unpickles code: save model.state_dict() instead")
        return "it is not a PyTorch checkpoint (a torch.save file of tensors)"
    first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return first


def unwrap_state_dict(obj: Mapping[str, object]) -> StateDict:
    """Find the state dict inside a training checkpoint and strip `module.` (DataParallel) prefixes."""
    current: Mapping[str, object] = obj
    for _ in range(3):  # wrappers nest at most a couple of levels deep
        inner = next((current[k] for k in _WRAPPER_KEYS if isinstance(current.get(k), Mapping)), None)
        if inner is None or any(isinstance(v, torch.Tensor) for v in current.values()):
            break
        current = inner  # type: ignore[assignment]
    tensors = {k: v for k, v in current.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("checkpoint holds no tensors (expected a state dict, or one under 'model'/'state_dict')")
    out: StateDict = {}
    for key, value in tensors.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        out[key] = value
    return out


def _summarise(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def load_checkpoint(model: nn.Module, checkpoint: str | os.PathLike[str] | Mapping[str, object]) -> nn.Module:
    """Load a checkpoint (path or state dict, wrapped or not) strictly into `model`; returns the model.

    A model may define `checkpoint_filter(state_dict) -> state_dict` to map official key names onto
    its own; everything else must match key for key and shape for shape.
    """
    raw = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    state = unwrap_state_dict(raw)
    filt = getattr(model, "checkpoint_filter", None)
    if callable(filt):
        state = filt(state)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        name = getattr(model, "edgevit_name", type(model).__name__)
        parts = []
        if missing:
            parts.append(f"missing keys: {_summarise(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_summarise(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch: {_summarise(mismatched)}")
        raise CheckpointError(f"checkpoint does not fit {name}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model
