"""Exporters, one module per target, each registering its row of the targets table on import."""
from __future__ import annotations

from edgevit.exporters.targets import (
    ExportRequest,
    ExportResult,
    Target,
    check_precision,
    get_target,
    register_target,
    target_for_artifact,
    targets,
)

__all__ = [
    "ExportRequest", "ExportResult", "Target", "check_precision", "get_target", "register_target",
    "target_for_artifact", "targets",
]
