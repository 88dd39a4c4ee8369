"""Read and write an ncnn model (`.param` text + `.bin` weights) layer by layer, without ncnn itself.

Why: ncnn's int8 tools (ncnn2table, ncnn2int8) are in no wheel on PyPI, so edgevit writes ncnn's int8
format itself. That needs the weights of each layer, and the `.bin` is a bare concatenation of the
arrays every layer's `load_model` reads, in layer order, with no names or offsets. `blob_layout`
states what each weighted layer type reads (from ncnn's `src/layer/*.cpp` `load_model`); `read_bin`
walks the file with it and insists on consuming it exactly, so a layer type it does not know fails
loudly instead of shifting every later weight.

Two kinds of array, as in ncnn's `ModelBin::load(w, type)`:
- type 0 ("tagged"): a 4-byte little-endian tag, then the data. Tag 0: float32; 0x01306B47: float16
  (padded to 4 bytes); 0x000D4B38: int8 (padded to 4 bytes); 0x0002C056: float32; any other non-zero
  tag: a 256-entry float32 codebook followed by one uint8 index per value (padded).
- type 1 ("raw"): float32 without a tag (biases, normalisation parameters, int8 scales).

Only numpy is needed; the same module runs wherever the artifacts are written.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

PARAM_MAGIC = "7767517"
TAG_FP32 = 0x00000000
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056


class NcnnFormatError(ValueError):
    """The `.param`/`.bin` pair is not what this reader understands (a bug or an unknown layer type)."""


# ------------------------------------------------------------------------------------------ param


@dataclass
class Layer:
    """One `.param` line: type, name, bottom and top blob names, and its `key=value` tokens verbatim."""

    kind: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, str] = field(default_factory=dict)  # id -> value text; arrays keep their -233xx id

    def int(self, key: int, default: int = 0) -> int:
        """An integer parameter (ncnn's `pd.get(key, default)`)."""
        value = self.params.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            return int(float(value))

    def set(self, key: int, value: int | float) -> None:
        """Set a scalar parameter (replaces an existing token)."""
        self.params[key] = str(value)

    def line(self) -> str:
        """The `.param` line for this layer."""
        head = [self.kind, self.name, str(len(self.bottoms)), str(len(self.tops)), *self.bottoms, *self.tops]
        return " ".join(head + [f"{k}={v}" for k, v in self.params.items()])


@dataclass
class Param:
    """A parsed `.param` file: its layers in order and the blob count of the header."""

    layers: list[Layer]
    blob_count: int

    def text(self) -> str:
        lines = [PARAM_MAGIC, f"{len(self.layers)} {self.blob_count}", *(layer.line() for layer in self.layers)]
        return "\n".join(lines) + "\n"

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def consumers(self) -> dict[str, list[Layer]]:
        """Blob name -> the layers that read it."""
        out: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for b in layer.bottoms:
                out.setdefault(b, []).append(layer)
        return out


def read_param(text: str) -> Param:
    """Parse ncnn `.param` text (the plain-text form pnnx writes, magic 7767517)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise NcnnFormatError(f"not an ncnn .param file (magic {lines[0].strip() if lines else ''!r})")
    n_layers, n_blobs = (int(v) for v in lines[1].split()[:2])
    layers = []
    for ln in lines[2:]:
        parts = ln.split()
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        blobs = parts[4 : 4 + n_in + n_out]
        params: dict[int, str] = {}
        for token in parts[4 + n_in + n_out :]:
            key, sep, value = token.partition("=")
            if not sep:
                raise NcnnFormatError(f"layer {name}: cannot parse {token!r} (quoted strings are not supported)")
            params[int(key)] = value
        layers.append(Layer(kind, name, blobs[:n_in], blobs[n_in:], params))
    if len(layers) != n_layers:
        raise NcnnFormatError(f".param header says {n_layers} layers, the file has {len(layers)}")
    return Param(layers, n_blobs)


# ------------------------------------------------------------------------------------------ bin layout

# (field name, element count, tagged) for each array a layer's load_model reads, in order
Entry = tuple[str, int, bool]


def _conv_like(layer: Layer, *, int8: bool, dynamic_key: int = 19) -> list[Entry]:
    if layer.int(dynamic_key):  # weights come from a second input blob
        return []
    out = [("weight", layer.int(6), True)]
    if layer.int(5):
        out.append(("bias", layer.int(0), False))
    if int8:
        out += _conv_int8_scales(layer)
    return out


def _conv_int8_scales(layer: Layer) -> list[Entry]:
    term = layer.int(8)
    if not term:
        return []
    if layer.kind == "Convolution":
        out = [("weight_int8_scales", layer.int(0), False), ("bottom_int8_scale", 1, False)]
    else:  # ConvolutionDepthWise: 1/101 per group, 2/102 one scale for all groups
        per_group = term in (1, 101)
        out = [("weight_int8_scales", layer.int(7, 1) if per_group else 1, False), ("bottom_int8_scale", 1, False)]
    if term > 100:
        out.append(("top_int8_scale", 1, False))
    return out


def _innerproduct(layer: Layer) -> list[Entry]:
    out = [("weight", layer.int(2), True)]
    if layer.int(1):
        out.append(("bias", layer.int(0), False))
    if layer.int(8):
        out += [("weight_int8_scales", layer.int(0), False), ("bottom_int8_scale", 1, False)]
    return out


def _gemm(layer: Layer) -> list[Entry]:
    term = layer.int(18)
    if term >= 100:
        raise NcnnFormatError(f"Gemm {layer.name}: weight block quantization (18={term}) is not supported")
    m, n, k = layer.int(7), layer.int(8), layer.int(9)
    out = []
    if layer.int(4):
        out.append(("A", m * k, True))
    if layer.int(5):
        out.append(("B", n * k, True))
    bt = layer.int(10)
    if layer.int(6) and bt != -1:
        out.append(("C", {0: 1, 1: m, 2: m, 3: m * n, 4: n}[bt], True))
    if term:
        if layer.int(4):
            out.append(("A_int8_scales", m, False))
        if layer.int(5):
            out.append(("B_int8_scale", 1, False))
    return out


def _memorydata(layer: Layer) -> list[Entry]:
    w, h, d, c = layer.int(0), layer.int(1), layer.int(11), layer.int(2)
    tagged = layer.int(21, 1) == 0
    if d:
        count = w * h * d * c
    elif c:
        count = w * h * c
    elif h:
        count = w * h
    else:
        count = w
    return [("data", count, tagged)] if count else []


def _affine(size_key: int, affine_key: int, *names: str) -> Callable[[Layer], list[Entry]]:
    def layout(layer: Layer) -> list[Entry]:
        if not layer.int(affine_key, 1):
            return []
        return [(n, layer.int(size_key), False) for n in names]

    return layout


def _mha(layer: Layer) -> list[Entry]:
    if layer.int(18):
        raise NcnnFormatError(f"MultiHeadAttention {layer.name}: quantized attention is not supported")
    e, size = layer.int(0), layer.int(2)
    kdim, vdim = layer.int(3, e), layer.int(4, e)
    qdim = size // e if e else 0
    return [("q_weight", e * qdim, True), ("q_bias", e, False), ("k_weight", e * kdim, True), ("k_bias", e, False),
            ("v_weight", e * vdim, True), ("v_bias", e, False), ("out_weight", qdim * e, True),
            ("out_bias", qdim, False)]


def _scale(layer: Layer) -> list[Entry]:
    size = layer.int(0)
    if size == -233:  # scale from a second input blob
        return []
    return [("scale", size, False)] + ([("bias", size, False)] if layer.int(1) else [])


def _embed(layer: Layer) -> list[Entry]:
    out = [("weight", layer.int(3), True)]
    if layer.int(2):
        out.append(("bias", layer.int(0), False))
    if layer.int(18):
        out.append(("weight_int8_scale", 1, False))
    return out


LAYOUTS: dict[str, Callable[[Layer], list[Entry]]] = {
    "Convolution": lambda ly: _conv_like(ly, int8=True),
    "ConvolutionDepthWise": lambda ly: _conv_like(ly, int8=True),
    "Convolution1D": lambda ly: _conv_like(ly, int8=False),
    "ConvolutionDepthWise1D": lambda ly: _conv_like(ly, int8=False),
    "Convolution3D": lambda ly: _conv_like(ly, int8=False),
    "ConvolutionDepthWise3D": lambda ly: _conv_like(ly, int8=False),
    "Deconvolution": lambda ly: _conv_like(ly, int8=False, dynamic_key=28),
    "DeconvolutionDepthWise": lambda ly: _conv_like(ly, int8=False, dynamic_key=28),
    "Deconvolution1D": lambda ly: _conv_like(ly, int8=False, dynamic_key=28),
    "InnerProduct": _innerproduct,
    "Gemm": _gemm,
    "MemoryData": _memorydata,
    "LayerNorm": _affine(0, 2, "gamma", "beta"),
    "RMSNorm": _affine(0, 2, "gamma"),
    "GroupNorm": _affine(1, 3, "gamma", "beta"),
    "InstanceNorm": _affine(0, 2, "gamma", "beta"),
    "BatchNorm": lambda ly: [(n, ly.int(0), False) for n in ("slope", "mean", "var", "bias")],
    "PReLU": lambda ly: [("slope", ly.int(0), False)],
    "Scale": _scale,
    "Embed": _embed,
    "MultiHeadAttention": _mha,
}


def blob_layout(layer: Layer) -> list[Entry]:
    """The arrays `layer` reads from the `.bin`, in order; [] for layer types without weights."""
    fn = LAYOUTS.get(layer.kind)
    return fn(layer) if fn else []


# ------------------------------------------------------------------------------------------ bin data


@dataclass
class Array:
    """One array of the `.bin`: its exact bytes (tag included) and how to read them as numbers."""

    name: str
    count: int
    tagged: bool
    raw: bytes

    @property
    def tag(self) -> int | None:
        return struct.unpack("<I", self.raw[:4])[0] if self.tagged else None

    @property
    def storage(self) -> str:
        """fp32, fp16, int8 or codebook (ncnn's 8-bit table quantization)."""
        tag = self.tag
        if tag is None or tag in (TAG_FP32, TAG_FP32_SCALED):
            return "fp32"
        return {TAG_FP16: "fp16", TAG_INT8: "int8"}.get(tag, "codebook")

    def values(self) -> np.ndarray:
        """The array as numbers: float32, or int8 for int8 storage."""
        if not self.tagged:
            return np.frombuffer(self.raw, "<f4", self.count).astype(np.float32)
        body, storage = self.raw[4:], self.storage
        if storage == "fp32":
            return np.frombuffer(body, "<f4", self.count).astype(np.float32)
        if storage == "fp16":
            return np.frombuffer(body, "<f2", self.count).astype(np.float32)
        if storage == "int8":
            return np.frombuffer(body, np.int8, self.count).copy()
        table = np.frombuffer(body, "<f4", 256)
        return table[np.frombuffer(body, np.uint8, self.count, offset=1024)].astype(np.float32)


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def _tagged_size(raw: bytes, offset: int, count: int) -> int:
    """Bytes a tagged array of `count` values occupies at `offset` (tag included)."""
    if offset + 4 > len(raw):
        raise NcnnFormatError(f"the .bin ends at {len(raw)} bytes; an array tag was expected at {offset}")
    tag = struct.unpack_from("<I", raw, offset)[0]
    if tag in (TAG_FP32, TAG_FP32_SCALED):
        return 4 + 4 * count
    if tag == TAG_FP16:
        return 4 + _align4(2 * count)
    if tag == TAG_INT8:
        return 4 + _align4(count)
    return 4 + 1024 + _align4(count)  # any other non-zero tag: codebook + indices


def read_bin(param: Param, raw: bytes) -> dict[str, list[Array]]:
    """Split the `.bin` into each layer's arrays (layer name -> arrays, in load order).

    Raises NcnnFormatError unless the arrays cover the file exactly: an unknown weighted layer type
    would otherwise shift every later array silently.
    """
    offset = 0
    out: dict[str, list[Array]] = {}
    for layer in param.layers:
        arrays = []
        for name, count, tagged in blob_layout(layer):
            size = _tagged_size(raw, offset, count) if tagged else 4 * count
            if offset + size > len(raw):
                raise NcnnFormatError(f"{layer.kind} {layer.name}: {name} runs past the end of the .bin")
            arrays.append(Array(name, count, tagged, raw[offset : offset + size]))
            offset += size
        if arrays:
            out[layer.name] = arrays
    if offset != len(raw):
        kinds = sorted({ly.kind for ly in param.layers if ly.kind not in LAYOUTS})
        raise NcnnFormatError(
            f"the layers read {offset} of the .bin's {len(raw)} bytes: a layer type with weights is unknown "
            f"to edgevit's ncnn reader (types without a known layout: {', '.join(kinds) or 'none'})"
        )
    return out


def write_bin(param: Param, arrays: dict[str, list[Array]]) -> bytes:
    """Concatenate every layer's arrays in layer order (the inverse of `read_bin`), checking each
    layer carries exactly the arrays its `.param` line makes ncnn read."""
    chunks = []
    for layer in param.layers:
        expected = blob_layout(layer)
        have = arrays.get(layer.name, [])
        if [(n, c, t) for n, c, t in expected] != [(a.name, a.count, a.tagged) for a in have]:
            raise NcnnFormatError(
                f"{layer.kind} {layer.name}: arrays {[(a.name, a.count) for a in have]} do not match what its "
                f"parameters make ncnn read {[(n, c) for n, c, _ in expected]}"
            )
        chunks.extend(a.raw for a in have)
    return b"".join(chunks)


def raw_array(name: str, values: np.ndarray) -> Array:
    """An untagged float32 array (biases, scales)."""
    v = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    return Array(name, int(v.size), False, v.tobytes())


def int8_array(name: str, values: np.ndarray) -> Array:
    """A tagged int8 array (quantized weights), padded to 4 bytes as ncnn reads it."""
    v = np.ascontiguousarray(values, dtype=np.int8).reshape(-1)
    body = v.tobytes() + b"\0" * (_align4(v.size) - v.size)
    return Array(name, int(v.size), True, struct.pack("<I", TAG_INT8) + body)


def fp32_array(name: str, values: np.ndarray) -> Array:
    """A tagged float32 array."""
    v = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
    return Array(name, int(v.size), True, struct.pack("<I", TAG_FP32) + v.tobytes())
