"""An ncnn `.param` graph with its layer parameters, and the shape of every blob.

`parse_ncnn_param` keeps what `edgevit.exporters.ncnn.parse_param` drops: each layer's `k=v` parameters
(`0=64 1=3 6=1728`, arrays `-23300=3,a,b,c`), which the cost features need (kernel size, stride, group,
weight count, Gemm's constant N/K).

Blob shapes come from ncnn itself: `ncnn_blob_shapes` loads the graph with empty (zero) weights, as
ncnn's own benchncnn does, runs one forward pass on a zero input and reads every blob back. We chose this
over writing shape inference because ncnn's Reshape/Permute/Slice/Crop/Interp/Gemm semantics over its
w/h/d/c axes are intricate and version-dependent; ncnn computing its own shapes is exact for every layer
type it can load, at the cost of one forward pass (under a second for the benchmark networks here).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from edgevit.errors import ConfigError, UnavailableError

PARAM_MAGIC = "7767517"
ParamValue = Union[int, float, str, tuple[int | float, ...]]
Shape = tuple[int, ...]  # ncnn order, outermost first: (w,), (h, w), (c, h, w) or (c, d, h, w)

_SHAPELESS = frozenset({"Noop", "DetectionOutput", "Yolov3DetectionOutput", "YoloDetectionOutput"})
_ARRAY_BASE = -23300  # ncnn writes array parameter k as key -23300 - k


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a `.param` file."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Mapping[int, ParamValue]

    def get(self, key: int, default: ParamValue = 0) -> ParamValue:
        return self.params.get(key, default)

    def int(self, key: int, default: int = 0) -> int:
        value = self.params.get(key, default)
        if isinstance(value, str):
            return default
        return int(value[0] if isinstance(value, tuple) else value)


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _parse_params(tokens: list[str], where: str) -> dict[int, ParamValue]:
    params: dict[int, ParamValue] = {}
    for tok in tokens:
        key_s, sep, value_s = tok.partition("=")
        if not sep:
            raise ConfigError(f"{where}: parameter {tok!r} is not KEY=VALUE")
        try:
            key = int(key_s)
            if value_s.startswith('"'):  # pnnx writes shape expressions as strings: 6="0w,-1"
                params[key] = value_s.strip('"')
            elif key <= _ARRAY_BASE:  # array: first element is its length
                items = [_number(v) for v in value_s.split(",")]
                params[_ARRAY_BASE - key] = tuple(items[1:])
            else:
                params[key] = _number(value_s)
        except ValueError:
            raise ConfigError(f"{where}: parameter {tok!r} is not a number") from None
    return params


def parse_ncnn_param(text: str) -> list[NcnnLayer]:
    """Layers of an ncnn `.param` text, parameters included; a ConfigError names a malformed line."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise ConfigError(f"not an ncnn .param file (magic {lines[0].strip() if lines else ''!r})")
    layers = []
    for i, ln in enumerate(lines[2:], start=3):
        parts = ln.split()
        where = f".param line {i}"
        if len(parts) < 4:
            raise ConfigError(f"{where}: expected TYPE NAME N_IN N_OUT ..., got {ln.strip()!r}")
        try:
            n_in, n_out = int(parts[2]), int(parts[3])
        except ValueError:
            raise ConfigError(f"{where}: blob counts {parts[2]!r} {parts[3]!r} are not integers") from None
        blobs = parts[4 : 4 + n_in + n_out]
        if len(blobs) != n_in + n_out:
            raise ConfigError(f"{where}: {n_in}+{n_out} blobs announced, {len(blobs)} given")
        params = _parse_params(parts[4 + n_in + n_out :], where)
        layers.append(NcnnLayer(parts[0], parts[1], tuple(blobs[:n_in]), tuple(blobs[n_in:]), params))
    return layers


def input_shapes_from_params(layers: list[NcnnLayer]) -> dict[str, Shape]:
    """Input shapes an `Input` layer declares itself (0=w 1=h 2=c), where it declares them."""
    out: dict[str, Shape] = {}
    for layer in layers:
        if layer.type != "Input":
            continue
        w, h, c = layer.int(0), layer.int(1), layer.int(2)
        if w > 0 and h > 0 and c > 0:
            out[layer.tops[0]] = (c, h, w)
        elif w > 0 and h > 0:
            out[layer.tops[0]] = (h, w)
        elif w > 0:
            out[layer.tops[0]] = (w,)
    return out


def ncnn_blob_shapes(text: str, inputs: Mapping[str, Shape] | None = None) -> dict[str, Shape]:
    """Shape of every blob, computed by ncnn with zero weights on a zero input.

    `inputs` maps input blob names to shapes in ncnn order (C, H, W); missing ones are read from the
    `Input` layers' own parameters.
    """
    try:
        import ncnn
    except ImportError as e:
        raise UnavailableError("blob shapes of an ncnn graph need ncnn: pip install 'edgevit[ncnn]'") from e
    layers = parse_ncnn_param(text)
    shapes = dict(input_shapes_from_params(layers))
    shapes.update(inputs or {})
    in_names = [layer.tops[0] for layer in layers if layer.type == "Input"]
    missing = [n for n in in_names if n not in shapes]
    if missing:
        raise ConfigError(f"input shape unknown for blob(s) {', '.join(missing)}: pass it (C,H,W)")
    net = ncnn.Net()
    net.opt.lightmode = False  # keep every intermediate blob for reading back
    net.opt.num_threads = max(1, min(4, len(os.sched_getaffinity(0))))
    net.opt.use_vulkan_compute = False
    with tempfile.TemporaryDirectory(prefix="edgevit-param-") as tmp:  # load_param_mem wants a C string
        path = Path(tmp) / "graph.param"
        path.write_text(text)
        if net.load_param(str(path)) != 0:
            raise ConfigError("ncnn could not load this .param (a layer type this ncnn does not know?)")
    net.load_model(ncnn.DataReaderFromEmpty())
    try:
        return _forward_shapes(net, layers, {n: shapes[n] for n in in_names})
    finally:
        net.clear()


def _forward_shapes(net: object, layers: list[NcnnLayer], inputs: Mapping[str, Shape]) -> dict[str, Shape]:
    """One zero-input forward pass; every Mat and the extractor are released before the net is cleared
    (ncnn aborts when its pool allocator outlives a Mat)."""
    import ncnn
    import numpy as np

    ex = net.create_extractor()  # type: ignore[attr-defined]
    arrays = {name: np.zeros(shape, dtype=np.float32) for name, shape in inputs.items()}  # must outlive the Mats
    out: dict[str, Shape] = {}
    failed = ""
    for name, arr in arrays.items():
        ex.input(name, ncnn.Mat(arr))
    for layer in layers:
        for blob in layer.tops:
            if blob in out:
                continue
            if layer.type == "Noop":  # ncnn does not compute a Noop's top (and prints an error if asked)
                out[blob] = ()
                continue
            ret, mat = ex.extract(blob)
            if ret != 0 and layer.type in _SHAPELESS:  # e.g. a trailing Noop: no work, no shape needed
                out[blob] = ()
                continue
            if ret != 0:
                failed = f"ncnn could not compute blob {blob!r} of layer {layer.name} ({layer.type})"
                break
            out[blob] = _mat_shape(mat)
            del mat
        if failed:
            break
    del ex
    if failed:
        raise ConfigError(failed)
    return out


def _mat_shape(mat: object) -> Shape:
    dims = int(mat.dims)  # type: ignore[attr-defined]
    w, h, d, c = (int(getattr(mat, k)) for k in ("w", "h", "d", "c"))
    return {0: (), 1: (w,), 2: (h, w), 3: (c, h, w), 4: (c, d, h, w)}[dims]
