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

# Each exporter module registers its row of the targets table on import (heavy imports stay lazy).
from edgevit.exporters import onnx  # noqa: E402,F401  isort: skip
from edgevit.exporters import coreml, tensorrt, torchscript  # noqa: E402,F401  isort: skip
from edgevit.exporters import executorch, ncnn  # noqa: E402,F401  isort: skip
from edgevit.backends import openvino  # noqa: E402,F401  isort: skip  (target + runtime rows)

__all__ = [
    "ExportRequest", "ExportResult", "Target", "check_precision", "get_target", "register_target",
    "target_for_artifact", "targets",
]
