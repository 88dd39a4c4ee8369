"""Reading ncnn artifacts: the `.param` text format, the artifact directory's manifest, static facts.

An edgevit ncnn artifact is a directory `NAME.ncnn/` holding `model.param`, `model.bin` and
`model.json` (blob names, input shape, storage precision); a bare `.param` with its `.bin` beside it
is read too.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from edgevit.errors import ExportError

PARAM = "model.param"
BIN = "model.bin"
MANIFEST = "model.json"
PARAM_MAGIC = "7767517"

Layer = tuple[str, str, list[str], list[str]]


def param_path(path: Path) -> Path:
    """The `.param` file of an ncnn artifact given as its directory or as the `.param` itself."""
    path = Path(path)
    if path.is_dir():
        return path / PARAM
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """`model.json` of an artifact directory; {} for a bare `.param` (ncnn defaults then apply)."""
    p = Path(path)
    manifest = (p if p.is_dir() else p.parent) / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return {}


def parse_param(text: str) -> list[Layer]:
    """Layers of an ncnn `.param` text as (type, name, input blobs, output blobs)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise ExportError(f"not an ncnn .param file (magic {lines[0].strip() if lines else ''!r})")
    layers = []
    for ln in lines[2:]:
        parts = ln.split()
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        blobs = parts[4 : 4 + n_in + n_out]
        layers.append((kind, name, blobs[:n_in], blobs[n_in:]))
    return layers


def layer_histogram(path: Path) -> dict[str, int]:
    """How many layers of each ncnn type the artifact holds, most frequent first."""
    layers = parse_param(param_path(path).read_text())
    return dict(Counter(kind for kind, *_ in layers).most_common())


def unconverted(layers: list[Layer]) -> list[str]:
    """Layers pnnx left in its own op names (`Tensor.reshape`, `F.xxx`, `torch.xxx`): ncnn cannot load them."""
    return [f"{kind} {name}" for kind, name, *_ in layers if "." in kind or "::" in kind]


def inspect_ncnn(path: Path) -> dict[str, Any]:
    """Static facts: layer count and histogram, blob names, input shape, storage precision, sizes."""
    p = param_path(path)
    layers = parse_param(p.read_text())
    manifest = read_manifest(path)
    bin_file = p.with_suffix(".bin")
    hist = dict(Counter(kind for kind, *_ in layers).most_common())
    return {
        "nodes": len(layers),  # the keys every target's inspector shares (edgevit verify prints them)
        "op_histogram": hist,
        "layers": len(layers),
        "layer_histogram": hist,
        # {blob: shape} like the other targets' inspectors; ncnn has no batch axis, shown as 1
        "inputs": {name: [1, *(manifest.get("input_shape") or [])] for kind, name, *_ in layers if kind == "Input"},
        "outputs": {name: None for name in manifest.get("outputs") or terminal_outputs(layers)},
        "precision": manifest.get("precision", "unknown"),
        "param_bytes": p.stat().st_size,
        "bin_bytes": bin_file.stat().st_size if bin_file.is_file() else None,
    }


def terminal_outputs(layers: list[Layer]) -> list[str]:
    """Blobs produced but never consumed: the graph outputs (pnnx names them out0, out1, ...)."""
    consumed = {b for _, _, ins, _ in layers for b in ins}
    produced = [b for _, _, _, outs in layers for b in outs]
    return [b for b in produced if b not in consumed]
