"""Model registry: each family file registers its factories where they are defined (timm-style).

Keys are the factory names; aliases map to the same entry. Registering a name twice is an error.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgevit.errors import UnknownModelError

Factory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one registered model: factory plus the published figures."""

    name: str
    family: str
    factory: Factory
    paper: str
    top1: float | None = None  # published ImageNet-1k top-1 (%)
    params_m: float | None = None  # published parameter count (millions)
    gmacs: float | None = None  # published GMACs at 224
    aliases: tuple[str, ...] = ()
    official: bool = True  # an official checkpoint layout exists (conformance fixture)
    default_cfg: dict[str, Any] = field(default_factory=dict)  # img_size, mean, std, crop_pct, ...


_MODELS: dict[str, ModelInfo] = {}
_ALIASES: dict[str, str] = {}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register_model(
    *,
    family: str,
    paper: str,
    top1: float | None = None,
    params_m: float | None = None,
    gmacs: float | None = None,
    aliases: tuple[str, ...] = (),
    official: bool = True,
    **default_cfg: Any,
) -> Callable[[Factory], Factory]:
    """Decorator registering a model factory under its function name (and aliases)."""

    def wrap(fn: Factory) -> Factory:
        name = fn.__name__
        for key in (name, *aliases):
            if key in _MODELS or key in _ALIASES:
                raise ValueError(f"model name {key!r} is registered twice")
        cfg = {"img_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "num_classes": 1000, **default_cfg}
        _MODELS[name] = ModelInfo(name, family, fn, paper, top1, params_m, gmacs, tuple(aliases), official, cfg)
        for alias in aliases:
            _ALIASES[alias] = name
        return fn

    return wrap


def _ensure_loaded() -> None:
    import edgevit.models  # noqa: F401  (importing the package registers every family)


def resolve_name(name: str) -> str:
    """Canonical name for a model name or alias; UnknownModelError with suggestions otherwise."""
    _ensure_loaded()
    key = name.strip().lower().replace("-", "_")
    if key in _MODELS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    close = difflib.get_close_matches(key, [*_MODELS, *_ALIASES], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `edgevit models` for the list"
    raise UnknownModelError(f"unknown model {name!r}{hint}")


def model_info(name: str) -> ModelInfo:
    return _MODELS[resolve_name(name)]


def list_models(family: str | None = None) -> list[str]:
    """Registered canonical model names, sorted; optionally one family's."""
    _ensure_loaded()
    return sorted(n for n, info in _MODELS.items() if family is None or info.family == family)


def list_aliases() -> dict[str, str]:
    _ensure_loaded()
    return dict(_ALIASES)
