"""The model zoo: importing this package registers every family."""
from __future__ import annotations

from typing import Any

from torch import nn

from edgevit.models._build import MODEL_INIT, SEEDED, apply_seeded_weights, build_reference, state_dict_sha256
from edgevit.models._checkpoint import load_checkpoint, read_checkpoint, unwrap_state_dict
from edgevit.models._registry import ModelInfo, list_aliases, list_models, model_info, register_model, resolve_name

# Families register themselves on import. Keep this list in one place.
from edgevit.models import fcaformer, cabvit, casvit, stvit  # noqa: E402,F401  isort: skip


def create_model(name: str, checkpoint: Any = None, **kwargs: Any) -> nn.Module:
    """Build a registered model by name or alias; optionally load a checkpoint (path or state dict)."""
    info = model_info(name)
    model = info.factory(**kwargs)
    model.edgevit_name = info.name  # type: ignore[assignment]  # recorded for errors and artifact metadata
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


__all__ = [
    "MODEL_INIT",
    "SEEDED",
    "ModelInfo",
    "apply_seeded_weights",
    "build_reference",
    "state_dict_sha256",
    "create_model",
    "list_aliases",
    "list_models",
    "load_checkpoint",
    "model_info",
    "read_checkpoint",
    "register_model",
    "resolve_name",
    "unwrap_state_dict",
]
