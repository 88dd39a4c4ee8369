"""ncnn int8 from edgevit's own calibration: the model format ncnn2table + ncnn2int8 produce, written here.

Why: ncnn's quantization tools are in no wheel on PyPI and Debian has no ncnn, yet ncnn's int8 kernels
are its fast path on ARM (the Cortex-A17 profile's runtime). The format is small and documented in
ncnn's repository (Tencent/ncnn, `docs/how-to-use-and-FAQ/quantized-int8-inference.md`,
`src/layer/{convolution,convolutiondepthwise,innerproduct,gemm}.cpp`); this module writes it from the
same CalibrationSet every edgevit target calibrates on.

What becomes int8 (the layers whose ncnn kernels have an int8 path; everything else stays fp32):
- Convolution, ConvolutionDepthWise, InnerProduct: `8=int8_scale_term` (2 for Convolution and
  InnerProduct, as ncnn2int8 writes it: per-output-channel weight scales; 1 for ConvolutionDepthWise:
  one scale per group), int8 weights in the `.bin` (tag 0x000D4B38), then float32
  `weight_data_int8_scales` (127 / max|w| per output channel or group) and `bottom_blob_int8_scales`
  (one static activation scale, 127 / threshold, the threshold measured by running the fp32 model
  in ncnn on the calibration images).
- Gemm with a constant weight (`5=constantB=1`, pnnx's form of nn.Linear on tokens): `18=quantize_term
  2`, int8 B (N x K, transB=1), one float32 `B_data_int8_scale` for the whole weight (ncnn's Gemm has no
  per-channel weight scale); its input is quantized per row at run time by ncnn (dynamic), so it needs
  no calibration.
- Not int8 in ncnn: MatMul (attention), Convolution1D, LayerNorm, Softmax, GELU, BinaryOp, ...;
  Gemm with two activation inputs stays float too (it would quantize attention dynamically).

Which candidates stay float is decided by measured accuracy: the quantized net runs in ncnn on the
calibration hold-out beside the fp32 net; while the mean cosine misses the budget, the layer whose
return to float gains the most (measured one by one among the worst-ranked layers) goes back to float.
The returned `Int8Report` lists every layer's decision and the figures behind it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevit import progress
from edgevit.backends.ncnn.format import (
    Array,
    Layer,
    Param,
    int8_array,
    raw_array,
    read_bin,
    read_param,
    write_bin,
)
from edgevit.backends.ncnn.predicted import OPTION_DEVICE, PredictedCosts

CALIB_METHODS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.99  # of |x| over all calibration values
HIST_BINS = 2048  # ncnn2table's histogram size for KL
INT8_LEVELS = 128  # |q| <= 127: 128 non-negative levels
DEFAULT_COSINE_BUDGET = 0.998  # mean cosine int8 vs fp32 ncnn on the hold-out (verify's int8 bar is 0.98)
MAX_REVERTS = 8  # layers returned to float at most, one measured step each
PROBE_CANDIDATES = 6  # worst-ranked layers tried per step
DEFAULT_MARGIN = 0.03  # predicted int8 must beat float by 3 % of the layer's float cost (as on the other targets)
DEGENERATE_LOGITS = 1e-6  # fp32 outputs below this are rounding noise: no accuracy to keep

Log = Callable[[str], None]


@dataclass
class LayerDecision:
    """What happened to one layer that has an int8 kernel in ncnn."""

    name: str
    kind: str
    int8: bool
    reason: str  # why int8 or why float
    activation: str = ""  # "static" (calibrated scale) or "dynamic" (per row at run time)
    bottom_scale: float | None = None
    threshold: float | None = None  # |x| clip of the input, calibration
    weight_scales: str = ""  # "per-channel" / "per-tensor"
    weight_sqnr_db: float | None = None  # weight quantization SQNR
    output_cosine: float | None = None  # this layer's output, all-int8 net vs fp32 net (hold-out)


@dataclass
class Int8Report:
    """The quantization's record for model.json and the sidecar."""

    method: str
    calibration_images: int
    holdout_images: int
    cosine_budget: float
    cosine_vs_fp32: float  # mean over hold-out images, final net vs fp32 ncnn
    cosine_min_vs_fp32: float
    top1_agreement_vs_fp32: float
    layers: list[LayerDecision] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)  # candidates returned to float by the accuracy loop
    notes: list[str] = field(default_factory=list)
    predicted: dict[str, Any] = field(default_factory=dict)  # -O int8_device: per-layer and whole-model prices

    @property
    def int8_layers(self) -> list[str]:
        return [d.name for d in self.layers if d.int8]

    def histogram(self) -> dict[str, dict[str, int]]:
        """Layer type -> {"int8": n, "float": m} over the candidates."""
        out: dict[str, dict[str, int]] = {}
        for d in self.layers:
            row = out.setdefault(d.kind, {"int8": 0, "float": 0})
            row["int8" if d.int8 else "float"] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["int8_layer_count"] = len(self.int8_layers)
        data["histogram"] = self.histogram()
        return data


# ------------------------------------------------------------------------------------------ candidates


def candidate_kind(layer: Layer) -> str | None:
    """'static' / 'dynamic' when ncnn has an int8 kernel for this layer as configured, else None."""
    if layer.kind in ("Convolution", "ConvolutionDepthWise"):
        return None if layer.int(19) or layer.int(8) else "static"
    if layer.kind == "InnerProduct":
        return None if layer.int(8) else "static"
    if layer.kind == "Gemm":
        const_weight = layer.int(5) == 1 and layer.int(4) == 0
        return "dynamic" if const_weight and not layer.int(18) else None
    return None


# ------------------------------------------------------------------------------------------ running ncnn


class NcnnNet:
    """An ncnn net of param text and bin bytes, fp32 everywhere outside int8 layers.

    Loaded from temporary files: the binding's `load_model_mem` returns nothing, so a bad `.bin`
    would go unnoticed; `load_model(path)` returns ncnn's status.
    """

    def __init__(self, param_text: str, bin_bytes: bytes, *, threads: int, light: bool = True) -> None:
        import tempfile

        import ncnn

        self._ncnn = ncnn
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = threads
        opt.lightmode = light
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = False
        opt.use_bf16_storage = opt.use_bf16_packed = False
        opt.use_int8_inference = True
        with tempfile.TemporaryDirectory(prefix="edgevit-ncnn-int8-") as tmp:
            param, binf = Path(tmp) / "m.param", Path(tmp) / "m.bin"
            param.write_text(param_text)
            binf.write_bytes(bin_bytes)
            if self.net.load_param(str(param)) != 0:
                raise RuntimeError("ncnn rejected the .param")
            if self.net.load_model(str(binf)) != 0:
                raise RuntimeError("ncnn rejected the .bin")

    def run(self, x: np.ndarray, input_name: str, blobs: Sequence[str]) -> list[np.ndarray]:
        """The named blobs for one image (C, H, W)."""
        arr = np.ascontiguousarray(x, dtype=np.float32)
        ex = self.net.create_extractor()
        ex.input(input_name, self._ncnn.Mat(arr))
        out = []
        for name in blobs:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise RuntimeError(f"ncnn extract({name!r}) failed with {ret}")
            out.append(np.array(mat, dtype=np.float32, copy=True))
        return out

    def close(self) -> None:
        self.net.clear()


# ------------------------------------------------------------------------------------------ thresholds


def _kl_threshold(hist: np.ndarray, bin_width: float) -> float:
    """The |x| clip minimising KL(P || Q), P the clipped histogram, Q it quantized to 128 levels.

    The search ncnn2table (and TensorRT's entropy calibrator) does, in our own words: for each
    candidate clip bin i >= 128, fold the tail into bin i-1, merge the i bins into 128 groups, spread
    each group's mass evenly over its non-empty bins, and compare.
    """
    hist = hist.astype(np.float64)
    hist[0] = 0.0  # exact zeros (ReLU/GELU floors, padding) say nothing about the range
    total = hist.sum()
    if total == 0:
        return bin_width * len(hist)
    best_i, best_kl = len(hist), np.inf
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i] = sum(hist[i:])
    for i in range(INT8_LEVELS, len(hist) + 1):
        p = hist[:i].copy()
        if i < len(hist):
            p[i - 1] += tail[i]
        idx = (np.arange(i) * INT8_LEVELS) // i  # bin -> one of the 128 levels
        nonzero = hist[:i] > 0
        group_mass = np.bincount(idx, weights=hist[:i], minlength=INT8_LEVELS)
        group_count = np.bincount(idx, weights=nonzero.astype(np.float64), minlength=INT8_LEVELS)
        q = np.where(nonzero, group_mass[idx] / np.maximum(group_count[idx], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        pn, qn = p / ps, q / qs
        mask = pn > 0
        qn = np.where(mask & (qn == 0), 1e-12, qn)
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask])))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return (best_i + 0.5) * bin_width


def _percentile_threshold(hist: np.ndarray, bin_width: float, pct: float = PERCENTILE) -> float:
    cdf = np.cumsum(hist.astype(np.float64))
    if cdf[-1] == 0:
        return bin_width * len(hist)
    i = int(np.searchsorted(cdf, cdf[-1] * pct / 100.0))
    return (i + 1) * bin_width


def calibrate(
    net: NcnnNet, input_name: str, blobs: Sequence[str], images: np.ndarray, *, method: str, log: Log,
) -> dict[str, float]:
    """Per-blob |x| threshold over the calibration images (fp32 net): max, percentile or KL."""
    if method not in CALIB_METHODS:
        raise ValueError(f"unknown method {method!r}")
    absmax = dict.fromkeys(blobs, 0.0)
    with progress.step(f"calibrate ranges on {len(images)} images", total=len(images)) as advance:
        for x in images:
            for name, v in zip(blobs, net.run(x, input_name, blobs)):
                absmax[name] = max(absmax[name], float(np.abs(v).max()) if v.size else 0.0)
            advance(1)
    if method == "minmax":
        return {b: m if m > 0 else 1.0 for b, m in absmax.items()}
    hists = {b: np.zeros(HIST_BINS, np.int64) for b in blobs}
    with progress.step(f"calibrate histograms on {len(images)} images", total=len(images)) as advance:
        for x in images:
            for name, v in zip(blobs, net.run(x, input_name, blobs)):
                if absmax[name] > 0:
                    h, _ = np.histogram(np.abs(v), bins=HIST_BINS, range=(0.0, absmax[name]))
                    hists[name] += h
            advance(1)
    out = {}
    for b in blobs:
        if absmax[b] <= 0:
            out[b] = 1.0
            continue
        width = absmax[b] / HIST_BINS
        t = _kl_threshold(hists[b], width) if method == "entropy" else _percentile_threshold(hists[b], width)
        out[b] = min(t, absmax[b])
    return out


# ------------------------------------------------------------------------------------------ weights


def _quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: (int8 values, scales = 127 / max|row|; 1 for an all-zero row)."""
    absmax = np.abs(w).max(axis=1)
    scales = np.where(absmax > 0, 127.0 / np.where(absmax > 0, absmax, 1.0), 1.0).astype(np.float32)
    q = _round_clip(w * scales[:, None])
    return q, scales


def _round_clip(v: np.ndarray) -> np.ndarray:
    """ncnn's float2int8: round half away from zero, clamp to [-127, 127]."""
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(r, -127, 127).astype(np.int8)


def _sqnr_db(w: np.ndarray, deq: np.ndarray) -> float:
    noise = float(np.sum((w - deq) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(float(np.sum(w**2)) / noise)


def quantize_layer(layer: Layer, arrays: list[Array], bottom_scale: float | None) -> tuple[list[Array], float]:
    """Rewrite one layer's parameters and arrays to int8 in place of float; returns (arrays, weight SQNR dB)."""
    by = {a.name: a for a in arrays}
    w = by["B" if layer.kind == "Gemm" else "weight"].values().astype(np.float32)
    if layer.kind in ("Convolution", "InnerProduct"):
        rows = w.reshape(layer.int(0), -1)  # one scale per output channel
        term = 2
    elif layer.kind == "ConvolutionDepthWise":
        rows = w.reshape(layer.int(7, 1), -1)  # one scale per group (= channel when depthwise)
        term = 1
    elif layer.kind == "Gemm":
        n, k = layer.int(8), layer.int(9)
        rows = w.reshape(n, k) if layer.int(3) else w.reshape(k, n).T  # -> (N, K), transB=1
        flat = rows.reshape(1, -1)
        q, s = _quantize_rows(flat)
        layer.set(3, 1)
        layer.set(18, 2)
        out = [int8_array("B", q.reshape(n, k))]
        out += [a for a in arrays if a.name == "C"]
        out.append(raw_array("B_int8_scale", s[:1]))
        return out, _sqnr_db(flat, q.astype(np.float32) / s[:, None])
    else:
        raise ValueError(f"{layer.kind} has no int8 path here")
    q, s = _quantize_rows(rows)
    if bottom_scale is None or not np.isfinite(bottom_scale) or bottom_scale <= 0:
        raise ValueError(f"{layer.name}: bad activation scale {bottom_scale!r}")
    layer.set(8, term)
    out = [int8_array("weight", q)]
    out += [a for a in arrays if a.name == "bias"]
    out += [raw_array("weight_int8_scales", s), raw_array("bottom_int8_scale", np.array([bottom_scale]))]
    return out, _sqnr_db(rows, q.astype(np.float32) / s[:, None])


def build(param: Param, arrays: dict[str, list[Array]], plan: dict[str, float | None]) -> tuple[Param, dict[str, list[Array]], dict[str, float]]:
    """A copy of the model with the layers in `plan` (name -> bottom scale, None for dynamic) in int8."""
    import copy

    new = copy.deepcopy(param)
    new_arrays = dict(arrays)
    sqnr = {}
    for layer in new.layers:
        if layer.name in plan:
            new_arrays[layer.name], sqnr[layer.name] = quantize_layer(layer, arrays[layer.name], plan[layer.name])
    return new, new_arrays, sqnr


# ------------------------------------------------------------------------------------------ accuracy


def _cosines(a: Iterable[np.ndarray], b: Iterable[np.ndarray]) -> np.ndarray:
    out = []
    for x, y in zip(a, b):
        x, y = x.reshape(-1).astype(np.float64), y.reshape(-1).astype(np.float64)
        den = np.linalg.norm(x) * np.linalg.norm(y)
        out.append(float(x @ y / den) if den > 0 else float(np.array_equal(x, y)))
    return np.asarray(out)


class _Evaluator:
    """Runs quantization plans on the hold-out and compares with the fp32 net (same runtime, same images)."""

    def __init__(self, param: Param, arrays: dict[str, list[Array]], holdout: np.ndarray, *, input_name: str,
                 output_name: str, watched: list[str], reference: list[list[np.ndarray]], threads: int) -> None:
        self.param, self.arrays, self.holdout = param, arrays, holdout
        self.input_name, self.output_name, self.watched = input_name, output_name, watched
        self.reference = reference  # per image: the watched blobs, then the output
        self.threads = threads

    def run(self, plan: dict[str, float | None], *, blobs: bool = False) -> tuple[np.ndarray, list[np.ndarray], dict[str, float]]:
        """(per-image output cosine, outputs, weight SQNR per int8 layer); with `blobs`, also sets
        `self.blob_cosine` (watched blob -> mean cosine to fp32)."""
        q_param, q_arrays, sqnr = build(self.param, self.arrays, plan)
        names = [*self.watched, self.output_name] if blobs else [self.output_name]
        net = NcnnNet(q_param.text(), write_bin(q_param, q_arrays), threads=self.threads, light=not blobs)
        try:
            runs = [net.run(x, self.input_name, names) for x in self.holdout]
        finally:
            net.close()
        outs = [r[-1] for r in runs]
        if blobs:
            self.blob_cosine = {b: float(_cosines([r[i] for r in runs], [ref[i] for ref in self.reference]).mean())
                                for i, b in enumerate(self.watched)}
        return _cosines(outs, [ref[-1] for ref in self.reference]), outs, sqnr


def _split_candidates(param: Param, exclude: Sequence[str]) -> tuple[list[Layer], list[Layer], dict[str, LayerDecision]]:
    """(static candidates, dynamic candidates, decisions for the excluded ones)."""
    static: list[Layer] = []
    dynamic: list[Layer] = []
    excluded: dict[str, LayerDecision] = {}
    for layer in param.layers:
        kind = candidate_kind(layer)
        if kind is None:
            continue
        if layer.name in exclude or layer.kind in exclude:
            excluded[layer.name] = LayerDecision(layer.name, layer.kind, False, "float: kept float by request")
        else:
            (static if kind == "static" else dynamic).append(layer)
    return static, dynamic, excluded


def _own_drift(layer: Layer, blob_cosine: dict[str, float]) -> float:
    """How much cosine this layer loses between its input and its output in the all-int8 net."""
    return blob_cosine.get(layer.bottoms[0], 1.0) - blob_cosine.get(layer.tops[0], 1.0)


def _accuracy_loop(ev: _Evaluator, plan: dict[str, float | None], layers: dict[str, Layer], cos: np.ndarray,
                   budget: float, say: Log) -> tuple[list[str], dict[str, str], np.ndarray]:
    """Return layers to float, one measured step at a time, while the mean cosine misses `budget`.

    Each step tries the PROBE_CANDIDATES layers that lose most cosine themselves and keeps the one whose
    return raises the hold-out cosine most; it stops at the budget, at MAX_REVERTS, or when none helps.
    """
    reverted: list[str] = []
    reasons: dict[str, str] = {}
    while cos.mean() < budget and len(reverted) < MAX_REVERTS and plan:
        ranked = sorted(plan, key=lambda n: -_own_drift(layers[n], ev.blob_cosine))[:PROBE_CANDIDATES]
        best, best_cos = None, cos
        for name in ranked:
            trial, *_ = ev.run({k: v for k, v in plan.items() if k != name})
            if trial.mean() > best_cos.mean():
                best, best_cos = name, trial
        if best is None:
            break
        reasons[best] = f"float: back to float by the accuracy loop (hold-out cosine {cos.mean():.5f} -> {best_cos.mean():.5f})"
        say(f"cosine {cos.mean():.5f} < {budget}: {best} back to float -> {best_cos.mean():.5f}")
        plan.pop(best)
        reverted.append(best)
        cos = best_cos
    return reverted, reasons, cos


def _decision(ly: Layer, plan: dict[str, float | None], thresholds: dict[str, float], sqnr: dict[str, float],
              blob_cosine: dict[str, float], reason: str | None) -> LayerDecision:
    kind = candidate_kind(ly) or ""
    d = LayerDecision(ly.name, ly.kind, ly.name in plan, reason or "int8", activation=kind,
                      weight_scales="per-tensor" if ly.kind == "Gemm" else "per-channel",
                      output_cosine=blob_cosine.get(ly.tops[0]))
    if kind == "static":
        t = thresholds[ly.bottoms[0]]
        d.threshold, d.bottom_scale = float(t), float(127.0 / t)
    if ly.name in sqnr:
        d.weight_sqnr_db = float(sqnr[ly.name])
    return d


# ------------------------------------------------------------------------------------------ entry point


def quantize_ncnn(
    param_text: str,
    bin_bytes: bytes,
    calib: np.ndarray,
    holdout: np.ndarray,
    *,
    input_name: str,
    output_name: str,
    method: str = "minmax",
    cosine_budget: float = DEFAULT_COSINE_BUDGET,
    exclude: Sequence[str] = (),
    threads: int | None = None,
    log: Log | None = None,
    predicted: PredictedCosts | None = None,
    margin: float = DEFAULT_MARGIN,
) -> tuple[str, bytes, Int8Report]:
    """Quantize an fp32 ncnn model; returns (int8 .param text, int8 .bin bytes, report).

    `calib` and `holdout` are NCHW float32 images (the CalibrationSet's arrays); `exclude` names
    layers (or layer types) to keep float; `predicted` (a device's per-layer prices) keeps float the
    layers whose int8 does not pay there by `margin`. ncnn must be importable (it runs the nets).
    """
    say = log or (lambda _m: None)
    n_threads = threads or 1  # ncnn's OpenMP pool on a busy host: 2 threads ran the toy 500x slower than 1
    param = read_param(param_text)
    arrays = read_bin(param, bin_bytes)
    static, dynamic, decisions = _split_candidates(param, exclude)
    if not static and not dynamic:
        from edgevit.errors import ExportError

        raise ExportError("ncnn int8: no layer of this model has an int8 kernel in ncnn (or all were kept float)")
    candidates = {ly.name: ly for ly in (*static, *dynamic)}
    watched = list(dict.fromkeys(b for ly in candidates.values() for b in (ly.bottoms[0], ly.tops[0])))

    fp32 = NcnnNet(param_text, bin_bytes, threads=n_threads, light=False)
    try:
        bottoms = list(dict.fromkeys(ly.bottoms[0] for ly in static))
        say(f"calibrating {len(bottoms)} activation ranges on {len(calib)} images ({method})")
        thresholds = calibrate(fp32, input_name, bottoms, calib, method=method, log=say)
        reference = [fp32.run(x, input_name, [*watched, output_name]) for x in holdout]
    finally:
        fp32.close()
    plan: dict[str, float | None] = {ly.name: 127.0 / thresholds[ly.bottoms[0]] for ly in static}
    plan.update({ly.name: None for ly in dynamic})
    priced = _latency_choice(plan, predicted, margin, say) if predicted is not None else {}

    ev = _Evaluator(param, arrays, holdout, input_name=input_name, output_name=output_name, watched=watched,
                    reference=reference, threads=n_threads)
    say(f"int8 net: {len(plan)} layers ({len(static)} static, {len(dynamic)} dynamic) on {len(holdout)} hold-out images")
    cos, outs, sqnr = ev.run(plan, blobs=True)
    notes: list[str] = []
    reverted: list[str] = []
    reasons: dict[str, str] = {}
    if max(float(np.abs(ref[-1]).max()) for ref in reference) < DEGENERATE_LOGITS:
        # random-init FcaFormer: logits ~1e-20, a cosine there measures float noise, not int8
        notes.append(f"fp32 outputs are degenerate (max |y| < {DEGENERATE_LOGITS:g}, e.g. random weights): "
                     "accuracy loop skipped, every candidate stays int8")
    else:
        reverted, reasons, cos = _accuracy_loop(ev, plan, candidates, cos, cosine_budget, say)
    reasons = {**priced, **reasons}
    if reverted:
        cos, outs, sqnr = ev.run(plan)

    decisions.update({n: _decision(ly, plan, thresholds, sqnr, ev.blob_cosine, reasons.get(n))
                      for n, ly in candidates.items()})
    order = {ly.name: i for i, ly in enumerate(param.layers)}
    q_param, q_arrays, _ = build(param, arrays, plan)
    top1 = float(np.mean([o.argmax() == ref[-1].argmax() for o, ref in zip(outs, reference)]))
    report = Int8Report(
        method=method, calibration_images=len(calib), holdout_images=len(holdout),
        cosine_budget=cosine_budget, cosine_vs_fp32=float(cos.mean()), cosine_min_vs_fp32=float(cos.min()),
        top1_agreement_vs_fp32=top1, layers=sorted(decisions.values(), key=lambda d: order[d.name]),
        reverted=reverted, notes=notes, predicted=predicted.as_dict() if predicted is not None else {},
    )
    return q_param.text(), write_bin(q_param, q_arrays), report


def _latency_choice(plan: dict[str, float | None], predicted: PredictedCosts, margin: float,
                    say: Log) -> dict[str, str]:
    """Take out of `plan` the layers whose predicted int8 does not pay on the device; the reason of
    every candidate's latency decision."""
    reasons = {}
    where = f"{predicted.device}, {predicted.threads} threads, by the latency predictor"
    for name in list(plan):
        cost = predicted.costs.get(name)
        if cost is None:
            reasons[name] = f"int8: no predicted int8 price on {predicted.device} ({predicted.unpriced.get(name, '')})"
        elif cost.pays(margin):
            reasons[name] = f"int8: pays on {where} (int8 {cost.int8_ms:.3f} ms vs float {cost.float_ms:.3f} ms)"
        else:
            plan.pop(name)
            reasons[name] = (f"float: int8 does not pay on {where} (int8 {cost.int8_ms:.3f} ms vs float "
                             f"{cost.float_ms:.3f} ms)")
    say(f"{predicted.device}: {sum(r.startswith('float') for r in reasons.values())} of {len(reasons)} candidates "
        "kept float by predicted latency")
    return reasons


def quantize_files(param: Path, binf: Path, out_param: Path, out_bin: Path, calib: np.ndarray,
                   holdout: np.ndarray, **kw: Any) -> Int8Report:
    """`quantize_ncnn` on files; the outputs are written to temporary names and renamed when complete."""
    text, data, report = quantize_ncnn(param.read_text(), binf.read_bytes(), calib, holdout, **kw)
    for path, payload in ((out_param, text.encode()), (out_bin, data)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    return report


# ------------------------------------------------------------------------------------------ export glue

OPTION_KEEP_FLOAT = "int8_keep_float"  # comma-separated layer names or types kept float
OPTION_COSINE = "int8_cosine"  # the accuracy loop's budget (mean cosine to fp32 ncnn on the hold-out)


def summary_line(report: Int8Report) -> str:
    """One line for the export output: what runs in int8, what stayed float and the measured cosine."""
    hist = report.histogram()
    parts = [f"{k} {v['int8']}/{v['int8'] + v['float']}" for k, v in hist.items()]
    kept = f"; back to float for accuracy: {', '.join(report.reverted)}" if report.reverted else ""
    slow = sum(d.reason.startswith("float: int8 does not pay") for d in report.layers)
    device = report.predicted.get("device")
    priced = f"; float where int8 does not pay on {device} (predicted): {slow}" if device else ""
    whole = next((n for n in report.notes if n.startswith("predicted on")), "")
    return (f"ncnn int8: {len(report.int8_layers)} layers int8 ({', '.join(parts)}), the rest fp32{kept}{priced}; "
            f"cosine to fp32 ncnn {report.cosine_vs_fp32:.5f} (min {report.cosine_min_vs_fp32:.5f}) "
            f"on {report.holdout_images} hold-out images" + (f"; {whole}" if whole else ""))


def quantize_in_place(
    param: Path, binf: Path, calib: np.ndarray, holdout: np.ndarray, *, input_name: str, output_name: str,
    method: str, options: dict[str, Any], threads: int | None = None, log: Log | None = None,
    force: bool = False,
) -> Int8Report:
    """The ncnn exporter's int8 step: replace an fp32 param/bin pair by its int8 version.

    Options (`edgevit export --option KEY=VALUE`): `int8_keep_float=NAME,TYPE,...` keeps layers
    (by ncnn layer name, e.g. gemm_3, or type, e.g. Gemm) float; `int8_cosine=0.999` sets the budget;
    `int8_device=PROFILE` (e.g. arm-a17) keeps float the layers whose int8 the device's latency
    predictor prices no cheaper, and refuses (unless `force`) an int8 net predicted clearly slower.
    """
    from edgevit.errors import CalibrationError, ConfigError

    keep = options.get(OPTION_KEEP_FLOAT) or ()
    if isinstance(keep, str):
        keep = [k.strip() for k in keep.split(",") if k.strip()]
    try:
        budget = float(options.get(OPTION_COSINE, DEFAULT_COSINE_BUDGET))
    except (TypeError, ValueError):
        raise ConfigError(f"option {OPTION_COSINE} must be a number, got {options.get(OPTION_COSINE)!r}") from None
    if not 0.0 <= budget <= 1.0:
        raise ConfigError(f"option {OPTION_COSINE} must be between 0 and 1, got {budget}")
    if method not in CALIB_METHODS:
        raise ConfigError(f"ncnn int8 calibration method {method!r} is not one of {', '.join(CALIB_METHODS)}")
    if len(calib) == 0 or len(holdout) == 0:
        raise CalibrationError("ncnn int8 needs calibration and hold-out images")
    text = param.read_text()
    layers = read_param(text).layers
    known = {ly.name for ly in layers} | {ly.kind for ly in layers}
    unknown = [k for k in keep if k not in known]
    if unknown:
        raise ConfigError(f"{OPTION_KEEP_FLOAT}: no layer or layer type named {', '.join(unknown)} in this model")
    device = options.get(OPTION_DEVICE)
    predicted = _predicted(text, layers, calib, input_name, str(device)) if device else None
    report = quantize_files(param, binf, param, binf, calib, holdout, input_name=input_name, output_name=output_name,
                            method=method, cosine_budget=budget, exclude=list(keep), threads=threads, log=log,
                            predicted=predicted)
    if predicted is not None:
        _predicted_verdict(report, text, param.read_text(), calib, input_name, predicted.device, force)
    return report


def _predicted(text: str, layers: list[Layer], calib: np.ndarray, input_name: str, device: str) -> PredictedCosts:
    from edgevit.backends.ncnn.predicted import layer_costs

    names = [ly.name for ly in layers if candidate_kind(ly) is not None]
    with progress.step(f"int8: predicted per-layer costs on {device}"):
        return layer_costs(text, tuple(calib.shape[1:]), input_name, names, device=device, threads=None)


def _predicted_verdict(report: Int8Report, fp32_text: str, int8_text: str, calib: np.ndarray, input_name: str,
                       device: str, force: bool) -> None:
    """The whole int8 net against fp32 by the device's predictor; refuses a clearly slower one unless forced."""
    from edgevit.backends.ncnn.predicted import whole_model
    from edgevit.errors import Int8NotFasterError

    v = whole_model(fp32_text, int8_text, tuple(calib.shape[1:]), input_name, device=device, threads=None)
    report.predicted["whole_model"] = v
    said = (f"predicted on {device}: int8 {v['int8']['predicted_ms']:.0f} ms ({v['int8']['interval_ms'][0]:.0f}-"
            f"{v['int8']['interval_ms'][1]:.0f}) vs fp32 {v['fp32']['predicted_ms']:.0f} ms "
            f"({v['fp32']['interval_ms'][0]:.0f}-{v['fp32']['interval_ms'][1]:.0f}), {v['ratio']:.2f}x fp32, {v['verdict']}"
            + (f" (the predictor extrapolates: {len(v['extrapolates'])} warning(s) in the record)"
               if v["extrapolates"] else ""))
    report.notes.append(said)
    if v["verdict"] == "slower" and not force:
        raise Int8NotFasterError(f"int8 does not pay on {device} by its latency predictor: {said}; export fp32, "
                                 "or pass --int8-force (Python: int8_force=True) to write it anyway")
