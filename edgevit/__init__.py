"""edgevit: efficient vision transformers from a PyTorch checkpoint to a verified, benchmarked edge artifact.

Public API (imported lazily so that `import edgevit` and the CLI start fast):
create_model, list_models, load_checkpoint, deploy, export, verify, benchmark.
"""
from __future__ import annotations

import os
from typing import Any

# ONNX Runtime 1.32 writes a device id and a telemetry database under ~/.cache/Microsoft and a session
# file in $TMPDIR on every load (and warns when home is read-only), unless this is set before it loads.
# A user who wants ORT's telemetry can set it to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

_LAZY = {
    "create_model": "edgevit.models",
    "list_models": "edgevit.models",
    "load_checkpoint": "edgevit.models",
    "model_info": "edgevit.models",
    "deploy": "edgevit.rewrite",
    "export": "edgevit.export",
    "verify": "edgevit.verify",
    "benchmark": "edgevit.bench",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgevit' has no attribute {name!r}")


__all__ = [*_LAZY, "__version__"]
