"""Rewrite registry and the one walker that turns a train-form model into its deploy form.

A rewrite is a function `module -> module` registered for a module class where it is defined.
The walker deep-copies the model, then visits it bottom-up (children before parents), replacing
each module whose class (or a base class) has a rewrite, and calling `fuse()` on modules that
offer it. The input model is never modified.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

Rewrite = Callable[[nn.Module], nn.Module]

_REWRITES: dict[type[nn.Module], Rewrite] = {}


def register_rewrite(*classes: type[nn.Module]) -> Callable[[Rewrite], Rewrite]:
    """Register `fn` as the deploy rewrite for each class; loud on duplicates."""

    def wrap(fn: Rewrite) -> Rewrite:
        for cls in classes:
            if cls in _REWRITES:
                raise ValueError(f"a rewrite for {cls.__qualname__} is registered twice")
            _REWRITES[cls] = fn
        return fn

    return wrap


def rewrite_for(cls: type[nn.Module]) -> Rewrite | None:
    """The rewrite for a class, looked up along its MRO (most specific first)."""
    for base in cls.__mro__:
        if base in _REWRITES:
            return _REWRITES[base]
    return None


def registered_rewrites() -> dict[type[nn.Module], Rewrite]:
    return dict(_REWRITES)


def _apply(module: nn.Module) -> nn.Module:
    for name, child in list(module.named_children()):
        new = _apply(child)
        if new is not child:
            setattr(module, name, new)
    fuse = getattr(module, "fuse", None)
    if callable(fuse):
        fused = fuse()
        module = fused if isinstance(fused, nn.Module) else module
    fn = rewrite_for(type(module))
    return fn(module) if fn is not None else module


def deploy(model: nn.Module) -> nn.Module:
    """Return the deploy form of `model`: same function, static export-friendly ops, eval mode."""
    import edgevit.rewrite  # noqa: F401  (registers every rewrite module)

    out = copy.deepcopy(model).eval()
    out = _apply(out)
    out.eval()
    for p in out.parameters():
        p.requires_grad_(False)
    out.edgevit_name = getattr(model, "edgevit_name", type(model).__name__)  # type: ignore[assignment]
    out.edgevit_deploy = True  # type: ignore[assignment]
    return out
