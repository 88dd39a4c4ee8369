"""ONNX Runtime static int8 quantization in QDQ format, with the op choices that keep ViTs accurate.

Only Conv, MatMul and Gemm are quantized (Ultralytics' choice; optimum excludes LayerNorm, GELU and
residual Adds for the same reason, huggingface/optimum#151): LayerNormalization, Softmax, GELU and the
residual Adds stay float, so the post-LayerNorm channel outliers and the wide residual stream of
hybrid ViTs (Q-HyViT, arXiv 2303.12557) never meet an 8-bit grid. Weights are per-channel.

The graph is pre-processed first (`quant_pre_process`: ORT's basic optimisations + shape
inference): without it hundreds of Q/DQ pairs stay unfused and int8 runs slower than fp32
(measured on FcaFormer-L1, CAS-ViT-XS, STViT-S). The TensorRT preset skips ORT's optimisations, whose fused ops TensorRT cannot parse.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevit import progress
from edgevit.errors import CalibrationError, ConfigError, ExportError
from edgevit.quantize.data import CalibrationSet

QUANT_OPS = ("Conv", "MatMul", "Gemm")
ELEMENTWISE = ("Add", "Mul", "Sigmoid")  # QLinearAdd / QLinearMul / QLinearSigmoid in ORT's CPU EP
CALIB_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class QuantPreset:
    """One deployment target's int8 flavour (mirrors optimum's AutoQuantizationConfig presets)."""

    key: str
    activation: str  # "u8" | "s8"
    weight: str  # "s8" | "u8"
    activation_symmetric: bool
    weight_symmetric: bool = True
    per_channel: bool = True
    reduce_range: bool | None = False  # None: decided by the host (x86 without VNNI saturates)
    ort_optimize: bool = True  # let quant_pre_process run ORT graph optimisations first
    # ORT CPU: MatMul/Gemm outputs stay float (QGemm / MatMulIntegerToFloat write float directly), since
    # LayerNorm, GELU or a residual Add follows every one of them; a requantize + DequantizeLinear pass
    # per projection is pure cost (fcaformer_l1 on AVX2: 1.16x -> 1.21x over fp32, same cosine).
    float_outputs: tuple[str, ...] = ()
    const_b_matmuls_only: bool = False  # attention's activation x activation MatMuls stay float
    # (QLinearMatMul on attn @ v took 0.59 ms vs 0.13 ms in fp32 on fcaformer_l1, AVX2)
    skip_depthwise: bool = False  # depthwise convs stay float (few weights per channel, little gain)
    # elementwise ops ORT's CPU EP runs as QLinear kernels (QLinearAdd/Mul/Sigmoid): candidates of the
    # measured selection (kept int8 only where that measured faster), float under the static rules.
    # CAS-ViT's sigmoid gates and residual adds between int8 convs cost a DQ/Q pair each in float
    # (cas_vit_xs, VNNI: 0.95x fp32 with them float, 1.03x with the selection choosing them)
    elementwise: tuple[str, ...] = ()
    notes: str = ""


PRESETS: dict[str, QuantPreset] = {
    p.key: p
    for p in (
        QuantPreset(
            "x86", "u8", "s8", activation_symmetric=False, reduce_range=None,
            float_outputs=("MatMul", "Gemm"), const_b_matmuls_only=True, skip_depthwise=True,
            elementwise=ELEMENTWISE,
            notes="x86-64: u8 activations x s8 per-channel weights; 7-bit weights (reduce_range) unless "
            "the CPU has VNNI, because AVX2's u8s8 kernel saturates (override: options reduce_range); "
            "projections write float, attention MatMuls, depthwise convs and Add/Mul/Sigmoid stay float "
            "unless measured faster in int8",
        ),
        QuantPreset("arm64", "u8", "s8", activation_symmetric=False, float_outputs=("MatMul", "Gemm"),
                    const_b_matmuls_only=True, elementwise=ELEMENTWISE,
                    notes="arm64 (NEON / dot-product): u8 activations, s8 per-channel weights; projections "
                    "write float, attention MatMuls and Add/Mul/Sigmoid stay float unless measured faster"),
        QuantPreset(
            "tensorrt", "s8", "s8", activation_symmetric=True, ort_optimize=False,
            notes="TensorRT explicit quantization: symmetric s8/s8 QDQ on a graph free of ORT-only ops",
        ),
    )
}


def host_has_vnni() -> bool:
    """True when this x86 CPU has VNNI (or is not x86). Without VNNI, ORT's u8 x s8 kernels use
    VPMADDUBSW, whose int16 pair sums saturate: measured here (AVX2), fcaformer_l1 int8 fell to
    cosine 0.17 with 8-bit weights and recovered to 0.92 with reduce_range (7-bit weights)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags or "amx_int8" in flags


def default_preset() -> str:
    """The preset for the machine we run on (arm64 on aarch64 hosts, x86 otherwise)."""
    import platform

    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86"


def get_preset(key: str | None) -> QuantPreset:
    key = key or default_preset()
    if key not in PRESETS:
        raise ConfigError(f"unknown int8 preset {key!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[key]


@dataclass
class QuantReport:
    """What was quantized and how; recorded in the sidecar JSON."""

    preset: dict[str, Any]
    calib_method: str
    calibration_images: int
    op_types: list[str]
    excluded_nodes: int
    quantized_nodes: int
    extra_options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def depthwise_convs(model: Any) -> list[str]:
    """Names of the Conv nodes with one input channel per group (depthwise)."""
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        dims = weights.get(node.input[1])
        if group > 1 and dims is not None and len(dims) > 1 and dims[1] == 1:
            out.append(node.name)
    return out


def activation_matmuls(model: Any) -> list[str]:
    """Names of the MatMul nodes whose B is not a stored weight (attention's q @ k^T and attn @ v).

    ORT's own `MatMulConstBOnly` does not catch them: it searches B's whole producer chain for an
    initializer and finds the k/v projection's weight behind the Reshape/Transpose."""
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] not in consts]


def _reader(calib: CalibrationSet, input_name: str, batch: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = self._batches()

        def _batches(self) -> Iterator[np.ndarray]:
            with progress.step(f"calibrate on {len(calib.calib)} images", total=len(calib.calib)) as advance:
                for x in calib.batches(1):
                    # a fixed-batch graph needs exactly `batch` images: repeat to fill
                    yield np.ascontiguousarray(np.repeat(x, batch, axis=0)) if batch > 1 else x
                    advance(1)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: x}

        def rewind(self) -> None:
            self._it = self._batches()

    return _Reader()


@dataclass
class Prepared:
    """An fp32 model made ready for int8 variants: pre-processed once, calibrated once (ORT's
    calibration cache), so every variant is only a QDQ rewrite with other nodes kept float."""

    pre: Path  # the pre-processed fp32 graph; candidate node names are its node names
    cache: Path  # calibration ranges of every tensor the op types touch
    static_variant: Path  # the variant the preset's static rules give (written while calibrating)
    input_name: str
    candidates: list[tuple[str, str, str]]  # (node, kind, where) of every node of the op types
    static_exclude: list[str]  # what the preset keeps float without measuring, and `user_exclude`
    user_exclude: list[str]  # `options.exclude`: float in every mode
    op_types: list[str]
    method: str
    kwargs: dict[str, Any]  # the quantize_static arguments shared by every variant
    preset: dict[str, Any]
    calibration_images: int


def _kind(node: Any, depthwise: set[str], act_matmuls: set[str]) -> str:
    if node.name in depthwise:
        return "Conv depthwise"
    if node.name in act_matmuls:
        return "MatMul activations"
    return str(node.op_type)


def _where(node: Any, inits: set[str]) -> str:
    """A readable location: the first weight or bias named after a module (`stages.0.blocks.1.dwconv`)."""
    for i in node.input[1:]:
        if i in inits and "." in i:
            return i.rsplit(".", 1)[0]
    return node.name


def _pre_process(fp32_path: Path, pre: Path, optimize: bool) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32_path), str(pre), skip_optimization=not optimize)
    except Exception as exc:  # symbolic shape inference can fail on exotic graphs: retry without it
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_optimization=not optimize, skip_symbolic_shape=True)
        except Exception:
            raise ExportError(f"int8 pre-processing failed: {str(exc).splitlines()[0]}") from None


def prepare_onnx(
    fp32_path: Path,
    workdir: Path,
    calib: CalibrationSet,
    *,
    method: str = "minmax",
    preset: str | None = None,
    batch: int = 1,
    options: dict[str, Any] | None = None,
) -> Prepared:
    """Pre-process and calibrate `fp32_path` in `workdir`. `options`: reduce_range (bool), op_types
    (list), exclude (node names), per_channel (bool), matmul_const_b_only (bool), skip_depthwise (bool),
    percentile (float); defaults come from the preset."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    opts = dict(options or {})
    if method not in CALIB_METHODS:
        raise ConfigError(f"unknown calibration method {method!r}; choose one of: {', '.join(CALIB_METHODS)}")
    if len(calib.calib) == 0:
        raise CalibrationError("no calibration images")
    p = get_preset(preset)
    qtype = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    op_types = list(opts.get("op_types", (*QUANT_OPS, *p.elementwise)))
    extra: dict[str, Any] = {
        "ActivationSymmetric": p.activation_symmetric,
        "WeightSymmetric": p.weight_symmetric,
    }
    # Not CalibMaxIntermediateOutputs: in ORT 1.32 reaching the limit clears the collected ranges
    # without merging them, silently calibrating on the last partial chunk only. MinMax keeps only
    # reduced min/max per tensor per image, so memory stays small without it.
    if method == "percentile":
        extra["CalibPercentile"] = float(opts.get("percentile", 99.999))
    if method in ("entropy", "percentile"):
        extra["CalibNumBins"] = 2048
    rr = opts.get("reduce_range", p.reduce_range)
    reduce_range = (not host_has_vnni()) if rr is None else bool(rr)
    if p.float_outputs:
        extra["OpTypesToExcludeOutputQuantization"] = list(p.float_outputs)
    cal_method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]

    pre = workdir / "pre.onnx"
    _pre_process(fp32_path, pre, p.ort_optimize)
    model = onnx.load(str(pre))
    input_name = model.graph.input[0].name
    exclude = list(opts.get("exclude", []))
    user_exclude = list(exclude)
    depthwise, act_mm = set(depthwise_convs(model)), set(activation_matmuls(model))
    if opts.get("skip_depthwise", p.skip_depthwise):
        exclude += [n for n in sorted(depthwise) if n not in exclude]
    if opts.get("matmul_const_b_only", p.const_b_matmuls_only):
        exclude += [n for n in sorted(act_mm) if n not in exclude]
    exclude += [n.name for n in model.graph.node if n.op_type in p.elementwise and n.op_type in op_types
                and n.name not in exclude]
    inits = {t.name for t in model.graph.initializer}
    candidates = [(n.name, _kind(n, depthwise, act_mm), _where(n, inits)) for n in model.graph.node
                  if n.op_type in op_types]
    kwargs = dict(
        quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
        per_channel=bool(opts.get("per_channel", p.per_channel)), reduce_range=reduce_range,
        activation_type=qtype[p.activation], weight_type=qtype[p.weight], calibrate_method=cal_method,
        extra_options=extra,
    )
    cache = workdir / "calibration.json"
    with progress.step(f"int8: calibrate on {len(calib.calib)} images ({method})"):
        try:  # one calibration for every variant: ORT writes the ranges to its cache file
            quantize_static(str(pre), str(workdir / "static.onnx"), _reader(calib, input_name, batch),
                            nodes_to_exclude=exclude, calibration_cache_path=str(cache), **kwargs)
        except (CalibrationError, ConfigError):
            raise
        except Exception as exc:
            raise ExportError(f"int8 quantization failed: {str(exc).splitlines()[0]}") from None
    return Prepared(pre=pre, cache=cache, static_variant=workdir / "static.onnx", input_name=input_name, candidates=candidates, static_exclude=exclude,
                    user_exclude=user_exclude,
                    op_types=op_types, method=method, kwargs=kwargs, preset={**asdict(p), "reduce_range": reduce_range},
                    calibration_images=int(len(calib.calib)))


def write_variant(prep: Prepared, exclude: list[str] | set[str] | frozenset[str], output: Path) -> None:
    """The QDQ model with the candidates in `exclude` kept float, from the cached calibration; float
    consumers of a quantized float activation read it unquantized (`float_consumers_read_float`)."""
    import onnx
    from onnxruntime.quantization import quantize_static

    try:
        quantize_static(str(prep.pre), str(output), None, nodes_to_exclude=sorted(exclude),
                        calibration_cache_path=str(prep.cache), **prep.kwargs)
    except Exception as exc:
        raise ExportError(f"int8 quantization failed: {str(exc).splitlines()[0]}") from None
    if prep.preset.get("ort_optimize", True):
        model = onnx.load(str(output))
        int8 = {n for n, _, _ in prep.candidates} - set(exclude)
        if float_consumers_read_float(model, int8):
            onnx.save(model, str(output))


def float_consumers_read_float(model: Any, int8_nodes: set[str]) -> int:
    """Rewire every float consumer of a DequantizeLinear(QuantizeLinear(x)) pair, where x is a float
    activation, back to x; returns how many inputs were rewired.

    QDQ quantizes a tensor for all its consumers once one of them is int8 (ORT's QDQQuantizer replaces
    the input of every node), so a residual Add, a LayerNorm or a node kept float beside an int8 conv
    reads the 8-bit copy: accuracy lost for no speed. Outputs of int8 nodes stay as they are (their
    producer must feed only its QuantizeLinear to be fused)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    q_in = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    dq_src = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in q_in:
            x = q_in[n.input[0]]
            src = producer.get(x)
            if src is None or src.name not in int8_nodes:  # a float activation (or the graph input)
                dq_src[n.output[0]] = x
    rewired = 0
    for n in model.graph.node:
        if n.name in int8_nodes or n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, t in enumerate(n.input):
            if t in dq_src:
                n.input[i] = dq_src[t]
                rewired += 1
    return rewired


def report_for(prep: Prepared, excluded: int) -> QuantReport:
    return QuantReport(
        preset=prep.preset, calib_method=prep.method, calibration_images=prep.calibration_images,
        op_types=prep.op_types, excluded_nodes=excluded, quantized_nodes=len(prep.candidates) - excluded,
        extra_options=dict(prep.kwargs["extra_options"]),
    )


def quantize_onnx(
    fp32_path: Path,
    output: Path,
    calib: CalibrationSet,
    *,
    method: str = "minmax",
    preset: str | None = None,
    batch: int = 1,
    options: dict[str, Any] | None = None,
) -> QuantReport:
    """Quantize an fp32 ONNX file to int8 QDQ at `output` by the preset's static rules (no measuring).
    `options` as for `prepare_onnx`."""
    with tempfile.TemporaryDirectory(prefix="edgevit-q-") as tmp:
        prep = prepare_onnx(fp32_path, Path(tmp), calib, method=method, preset=preset, batch=batch, options=options)
        shutil.copyfile(prep.static_variant, output)
    return report_for(prep, len(prep.static_exclude))
