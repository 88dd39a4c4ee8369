"""An edgevit ncnn artifact as a whole: the directory `NAME.ncnn/` holding `model.param`, `model.bin` and
`model.json` (blob names, input shape, storage precision), a bare `.param` with its `.bin` beside it,
and the static facts `edgevit verify` prints. The `.param`/`.bin` formats themselves are in `format`.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from edgevit.backends.ncnn.format import Layer, NcnnFormatError, read_param
from edgevit.errors import ExportError

PARAM = "model.param"
BIN = "model.bin"
MANIFEST = "model.json"
INT8_KEYS = {"Convolution": 8, "ConvolutionDepthWise": 8, "InnerProduct": 8, "Gemm": 18}  # int8 switch id


def param_path(path: Path) -> Path:
    """The `.param` file of an ncnn artifact given as its directory or as the `.param` itself."""
    path = Path(path)
    return path / PARAM if path.is_dir() else path


def read_manifest(path: Path) -> dict[str, Any]:
    """`model.json` of an artifact directory; {} for a bare `.param` (ncnn defaults then apply)."""
    p = Path(path)
    manifest = (p if p.is_dir() else p.parent) / MANIFEST
    return json.loads(manifest.read_text()) if manifest.is_file() else {}


def read_layers(param: Path) -> list[Layer]:
    """The layers of a `.param` file; ExportError (one line) when it is not one."""
    try:
        return read_param(Path(param).read_text()).layers
    except (NcnnFormatError, ValueError, IndexError) as exc:
        raise ExportError(f"{Path(param).name}: {exc}") from None


def layer_histogram(path: Path) -> dict[str, int]:
    """How many layers of each ncnn type the artifact holds, most frequent first."""
    return dict(Counter(layer.kind for layer in read_layers(param_path(path))).most_common())


def unconverted(layers: list[Layer]) -> list[str]:
    """Layers pnnx left in its own op names (`Tensor.reshape`, `F.xxx`, `torch.xxx`): ncnn cannot load them."""
    return [f"{layer.kind} {layer.name}" for layer in layers if "." in layer.kind or "::" in layer.kind]


def terminal_outputs(layers: list[Layer]) -> list[str]:
    """Blobs produced but never consumed: the graph outputs (pnnx names them out0, out1, ...)."""
    consumed = {b for layer in layers for b in layer.bottoms}
    return [b for layer in layers for b in layer.tops if b not in consumed]


def runs_int8(layer: Layer) -> bool:
    """Whether ncnn runs this layer in int8: its int8_scale_term (Gemm: quantize term) is set."""
    key = INT8_KEYS.get(layer.kind)
    return key is not None and layer.int(key) != 0


def inspect_ncnn(path: Path) -> dict[str, Any]:
    """Static facts: layer count and histogram, blob names, input shape, storage precision, sizes."""
    p = param_path(path)
    layers = read_layers(p)
    manifest = read_manifest(path)
    bin_file = p.with_suffix(".bin")
    hist = dict(Counter(layer.kind for layer in layers).most_common())
    return {
        "nodes": len(layers),  # the keys every target's inspector shares (edgevit verify prints them)
        "op_histogram": hist,
        "layers": len(layers),
        "layer_histogram": hist,
        # {blob: shape} like the other targets' inspectors; ncnn has no batch axis, shown as 1
        "inputs": {layer.name: [1, *(manifest.get("input_shape") or [])] for layer in layers if layer.kind == "Input"},
        "outputs": {name: None for name in manifest.get("outputs") or terminal_outputs(layers)},
        "precision": manifest.get("precision", "unknown"),
        "int8_layers": sum(runs_int8(layer) for layer in layers),
        "metadata": {k: manifest[k] for k in ("model", "mean", "std") if k in manifest},
        "param_bytes": p.stat().st_size,
        "bin_bytes": bin_file.stat().st_size if bin_file.is_file() else None,
    }
