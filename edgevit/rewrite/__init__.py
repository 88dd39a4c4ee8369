"""Export rewrites: `deploy(model)` returns the static, export-friendly form of a model.

One module per problem; each registers itself for the classes it rewrites when imported here.
"""
from __future__ import annotations

from edgevit.rewrite._registry import deploy, register_rewrite, registered_rewrites, rewrite_for
from edgevit.rewrite import dropout, fuse  # noqa: E402,F401  isort: skip
from edgevit.rewrite import casvit  # noqa: E402,F401  isort: skip
from edgevit.rewrite import super_tokens  # noqa: E402,F401  isort: skip
from edgevit.rewrite import cross_tokens  # noqa: E402,F401  isort: skip
from edgevit.rewrite import convnext  # noqa: E402,F401  isort: skip

__all__ = ["deploy", "register_rewrite", "registered_rewrites", "rewrite_for"]
