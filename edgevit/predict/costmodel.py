"""The cost model: latency = sum over terms of (coefficient x work), fitted per (device, runtime, threads,
precision) on whole-network latencies, with leave-one-out errors and intervals. Plain data, no pickles.

A *structure* groups the fine kernel classes of `features` into fitted terms (dense conv MMACs, Winograd
3x3 MMACs, depthwise MMACs, token GEMMs, elementwise traffic, per-layer overhead, ...). Coefficients are
non-negative and minimise the squared *relative* error (`nnls` on rows divided by the latency), so a
10 ms network counts as much as a 1 s one.

A term no calibration network exercises (token GEMMs on a board whose table has no transformer) is not
fitted but *transferred*: its coefficient is the board's dense-conv coefficient times the median ratio
(term / dense) on the reference boards that do exercise it; predictions that lean on it say so.

Leave-one-out: each calibration network is left out, the model refitted (transfer included) and the
network predicted; the relative errors (predicted / measured - 1) give the board's LOO statistics and
the 80 % interval every prediction carries.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgevit.predict.features import NetworkFeatures

# ------------------------------------------------------------------------------------------ structures
TRAFFIC_CLASSES = ("eltwise", "transcend", "softmax", "norm", "pool", "layout")
STRUCTURES: dict[str, dict[str, tuple[str, ...]]] = {
    "kernels": {
        "dense": ("conv1x1", "conv3x3s2", "convkxk", "conv_group", "deconv"),
        "winograd": ("conv3x3s1",),
        "depthwise": ("dwconv3", "dwconvk"),
        "fc": ("fc",),
        "tokens": ("gemm", "matmul"),
        "traffic": TRAFFIC_CLASSES,
        "weights": ("weights",),
        "io": ("conv_io", "dw_io"),
        "layers": ("layers",),
    },
    "kernels-io": {
        "dense": ("conv1x1", "conv3x3s2", "convkxk", "conv_group", "deconv"),
        "winograd": ("conv3x3s1",),
        "depthwise": ("dwconv3", "dwconvk"),
        "fc": ("fc",),
        "tokens": ("gemm", "matmul"),
        "traffic": TRAFFIC_CLASSES,
        "io": ("conv_io", "dw_io"),
        "layers": ("layers",),
    },
    "kernels-plain": {
        "dense": ("conv1x1", "conv3x3s2", "convkxk", "conv_group", "deconv"),
        "winograd": ("conv3x3s1",),
        "depthwise": ("dwconv3", "dwconvk"),
        "fc": ("fc",),
        "tokens": ("gemm", "matmul"),
        "traffic": TRAFFIC_CLASSES,
        "layers": ("layers",),
    },
    "kernels-1x1": {
        "pointwise": ("conv1x1",),
        "dense": ("conv3x3s2", "convkxk", "conv_group", "deconv"),
        "winograd": ("conv3x3s1",),
        "depthwise": ("dwconv3", "dwconvk"),
        "fc": ("fc",),
        "tokens": ("gemm", "matmul"),
        "traffic": TRAFFIC_CLASSES,
        "io": ("conv_io", "dw_io"),
        "layers": ("layers",),
    },
    "coarse": {
        "macs": ("conv1x1", "conv3x3s2", "convkxk", "conv_group", "deconv", "conv3x3s1", "dwconv3", "dwconvk",
                 "fc", "gemm", "matmul"),
        "traffic": TRAFFIC_CLASSES,
        "layers": ("layers",),
    },
}
DEFAULT_STRUCTURE = "kernels"
# int8 (ncnn's int8 tables): the int8 conv terms, traffic and per-layer overhead are fitted on the int8
# rows; MAC terms they do not cover (token GEMMs, fc: float in the boards' int8 data) are priced by the
# same device's fp32 model. An fp32 graph predicted at int8 has its convs quantized (ncnn2int8 quantizes
# Convolution and ConvolutionDepthWise; Gemm/MatMul stay float in the boards' int8 data).
_INT8_CONVS = ("conv1x1_int8", "conv3x3s2_int8", "convkxk_int8", "conv_group_int8", "dwconv3_int8", "dwconvk_int8")
INT8_STRUCTURES: dict[str, dict[str, tuple[str, ...]]] = {
    "int8-split": {"winograd_int8": ("conv3x3s1_int8",), "conv_int8": _INT8_CONVS,
                   "traffic": TRAFFIC_CLASSES, "layers": ("layers",)},
    "int8-kernels": {"winograd_int8": ("conv3x3s1_int8",), "conv_int8": _INT8_CONVS[:4],
                     "depthwise_int8": _INT8_CONVS[4:], "traffic": TRAFFIC_CLASSES, "layers": ("layers",)},
    "int8-one": {"conv_int8": (*_INT8_CONVS, "conv3x3s1_int8"), "traffic": TRAFFIC_CLASSES, "layers": ("layers",)},
}
INT8_TERMS = ("winograd_int8", "conv_int8", "depthwise_int8")
QUANTIZED_BY_NCNN2INT8 = ("conv1x1", "conv3x3s2", "convkxk", "conv_group", "conv3x3s1", "dwconv3", "dwconvk")
# Terms whose work is MACs: only these can be absent from a calibration set (every network has traffic
# and layers). A MAC term is exercised by a network when it holds at least this share of its MACs
# (depthwise convs are a few % of a MobileNet's MACs and a large part of its time; fc is weight-bound).
MAC_TERMS = ("dense", "pointwise", "winograd", "depthwise", "fc", "tokens", "macs", *INT8_TERMS)
EXERCISED_SHARE = {"depthwise": 0.02, "depthwise_int8": 0.02, "fc": 0.005, "tokens": 0.2}
EXERCISED_DEFAULT = 0.1
TRANSFER_BASE = "dense"  # transferred terms are priced relative to this one
INTERVAL = (0.10, 0.90)  # the 80 % interval from LOO error quantiles

HUMAN = {
    "dense": "dense conv (1x1, strided 3x3, other kernels, grouped)", "pointwise": "1x1 conv",
    "winograd": "3x3 stride-1 conv", "depthwise": "depthwise conv", "fc": "InnerProduct (fc)",
    "tokens": "token GEMMs and attention (Gemm/MatMul/MultiHeadAttention)",
    "traffic": "elementwise, normalisation, pooling and layout traffic", "weights": "weight streaming",
    "io": "conv activation traffic", "layers": "per-layer overhead", "macs": "all MACs",
    "conv_int8": "int8 conv", "winograd_int8": "int8 3x3 stride-1 conv", "depthwise_int8": "int8 depthwise conv",
}


def term_work(features: NetworkFeatures, classes: Sequence[str]) -> float:
    """Work of one term: the sum of its fine classes (`layers` is the layer count)."""
    return float(sum(features.layers if c == "layers" else features.work.get(c, 0.0) for c in classes))


def design_row(features: NetworkFeatures, terms: Mapping[str, Sequence[str]]) -> np.ndarray:
    return np.array([term_work(features, cls) for cls in terms.values()], dtype=float)


def quantized_features(features: NetworkFeatures) -> NetworkFeatures:
    """The features an fp32 graph would have after ncnn2int8 (conv classes to `*_int8`)."""
    work = dict(features.work)
    for cls in QUANTIZED_BY_NCNN2INT8:
        amount = work.pop(cls, 0.0)
        if amount:
            work[f"{cls}_int8"] = work.get(f"{cls}_int8", 0.0) + amount
    return NetworkFeatures(name=features.name, work=work, layers=features.layers, layer_types=features.layer_types,
                           source=features.source, input_shapes=features.input_shapes,
                           unknown_types=features.unknown_types)


# ------------------------------------------------------------------------------------------ fitting
@dataclass
class Row:
    """One calibration network: its features and the latency to explain (ms)."""

    network: str
    features: NetworkFeatures
    latency_ms: float


def exercised(rows: Sequence[Row], terms: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """How many calibration networks exercise each MAC term (>= EXERCISED_SHARE of their MACs)."""
    out = {}
    for term, cls in terms.items():
        if term not in MAC_TERMS:
            out[term] = len(rows)
            continue
        share = EXERCISED_SHARE.get(term, EXERCISED_DEFAULT)
        out[term] = sum(1 for r in rows if r.features.total_macs_m > 0
                        and term_work(r.features, cls) >= share * r.features.total_macs_m)
    return out


def fit_coefficients(rows: Sequence[Row], terms: Mapping[str, Sequence[str]], *,
                     transfer: Mapping[str, float] | None = None,
                     offset: Sequence[float] | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Coefficients (ms per unit) and where each came from: "fitted", "transferred" or "absent".

    Terms no row exercises are left out of the fit; with a `transfer` ratio they are priced at
    ratio x the fitted TRANSFER_BASE coefficient. `offset` (ms per row) is a cost already explained
    (the fp32 part of an int8 network) and is subtracted before fitting.
    """
    names = list(terms)
    ex = exercised(rows, terms)
    fit_terms = [t for t in names if ex[t] > 0]
    y = np.array([r.latency_ms for r in rows], dtype=float)
    target = y - np.asarray(offset if offset is not None else np.zeros(len(rows)), dtype=float)
    a = np.array([[term_work(r.features, terms[t]) for t in fit_terms] for r in rows], dtype=float)
    if a.size:
        # rows are weighted by the full latency: relative error of the whole prediction
        from scipy.optimize import nnls

        scale = np.abs(a).max(axis=0)
        scale[scale == 0] = 1.0
        c, _ = nnls(a / y[:, None] / scale, target / y, maxiter=50 * a.shape[1] + 100)
        c = c / scale
    else:
        c = np.zeros(0)
    coef = dict.fromkeys(names, 0.0)
    source = dict.fromkeys(names, "absent")
    for t, v in zip(fit_terms, c, strict=True):
        coef[t], source[t] = float(v), "fitted"
    for t in names:
        if source[t] == "absent" and transfer and t in transfer and TRANSFER_BASE in coef:
            coef[t], source[t] = float(transfer[t] * coef[TRANSFER_BASE]), "transferred"
    return coef, source


def predict_terms(features: NetworkFeatures, terms: Mapping[str, Sequence[str]],
                  coef: Mapping[str, float]) -> dict[str, float]:
    """Predicted ms per term."""
    return {t: coef.get(t, 0.0) * term_work(features, cls) for t, cls in terms.items()}


# ------------------------------------------------------------------------------------------ the model
@dataclass
class LooStats:
    """Leave-one-out relative errors (predicted / measured - 1) and their summary."""

    errors: dict[str, float]

    def _abs(self) -> np.ndarray:
        return np.abs(np.array(list(self.errors.values()), dtype=float))

    @property
    def n(self) -> int:
        return len(self.errors)

    @property
    def median_abs(self) -> float:
        return float(np.median(self._abs())) if self.errors else math.nan

    @property
    def p90_abs(self) -> float:
        return float(np.percentile(self._abs(), 90)) if self.errors else math.nan

    def within(self, tol: float) -> float:
        return float(np.mean(self._abs() <= tol)) if self.errors else math.nan

    def quantiles(self, q: Sequence[float] = INTERVAL) -> tuple[float, float]:
        e = np.array(list(self.errors.values()), dtype=float)
        lo, hi = np.quantile(e, q[0]), np.quantile(e, q[1])
        return float(lo), float(hi)

    def summary(self) -> dict[str, float]:
        lo, hi = self.quantiles() if self.errors else (math.nan, math.nan)
        return {"n": self.n, "median_abs": round(self.median_abs, 4), "p90_abs": round(self.p90_abs, 4),
                "within_10": round(self.within(0.10), 4), "within_20": round(self.within(0.20), 4),
                "q10": round(lo, 4), "q90": round(hi, 4)}


@dataclass
class CostModel:
    """A fitted predictor for one (device, runtime, threads, precision): plain data, JSON both ways."""

    device: str  # board id (ncnn tables) or host fingerprint
    runtime: str
    threads: int
    precision: str
    structure: str
    terms: dict[str, tuple[str, ...]]
    coef: dict[str, float]
    coef_source: dict[str, str]
    rows: list[dict[str, Any]]  # network, measured_ms, fitted_ms, loo_ms (the data it was fitted on)
    loo: LooStats
    transfer: dict[str, float] = field(default_factory=dict)  # term -> ratio to the dense coefficient
    base: CostModel | None = None  # int8: the fp32 model pricing the float part
    source: dict[str, Any] = field(default_factory=dict)  # where the latencies come from
    ranges: dict[str, list[float]] = field(default_factory=dict)  # calibration ranges: ms, MMACs, per term
    classes_seen: list[str] = field(default_factory=list)
    layer_types_seen: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return predictor_key(self.device, self.runtime, self.threads, self.precision)

    def term_ms(self, features: NetworkFeatures) -> dict[str, float]:
        """Predicted ms per term (int8: the fp32 base prices the float MAC terms, as 'float <term>')."""
        own = predict_terms(features, self.terms, self.coef)
        if self.base is not None:
            own.update(self.float_ms(features))
        return own

    def float_ms(self, features: NetworkFeatures) -> dict[str, float]:
        """int8 models: the base's MAC terms (token GEMMs, fc, ...) on what stayed float; {} otherwise."""
        if self.base is None:
            return {}
        parts = predict_terms(features, self.base.terms, self.base.coef)
        return {f"float {t}": v for t, v in parts.items() if t in MAC_TERMS and v > 0}

    def predict_ms(self, features: NetworkFeatures) -> float:
        return float(sum(self.term_ms(features).values()))

    def describe(self) -> str:
        s = self.loo.summary()
        where = self.source.get("board") or self.device
        return (f"fitted on {len(self.rows)} networks on {where} ({self.runtime}, {self.threads} thread"
                f"{'s' if self.threads != 1 else ''}, {self.precision}), leave-one-out median error "
                f"{s['median_abs']:.0%}, {s['within_20']:.0%} within ±20%")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "device": self.device, "runtime": self.runtime, "threads": self.threads,
            "precision": self.precision, "structure": self.structure,
            "terms": {k: list(v) for k, v in self.terms.items()},
            "coef_ms_per_unit": {k: round(v, 8) for k, v in self.coef.items()}, "coef_source": self.coef_source,
            "transfer_ratio_to_" + TRANSFER_BASE: self.transfer, "loo": {**self.loo.summary(), "errors": {k: round(v, 4) for k, v in
                                                                              self.loo.errors.items()}},
            "rows": self.rows, "ranges": self.ranges, "classes_seen": self.classes_seen,
            "layer_types_seen": self.layer_types_seen, "source": self.source,
            "base": self.base.key if self.base is not None else None, "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base: CostModel | None = None) -> CostModel:
        return cls(
            device=d["device"], runtime=d["runtime"], threads=int(d["threads"]), precision=d["precision"],
            structure=d["structure"], terms={k: tuple(v) for k, v in d["terms"].items()},
            coef={k: float(v) for k, v in d["coef_ms_per_unit"].items()}, coef_source=dict(d["coef_source"]),
            rows=list(d["rows"]), loo=LooStats({k: float(v) for k, v in d["loo"]["errors"].items()}),
            transfer=dict(d.get("transfer_ratio_to_" + TRANSFER_BASE, {})), base=base, source=dict(d.get("source", {})),
            ranges={k: list(v) for k, v in d.get("ranges", {}).items()}, classes_seen=list(d.get("classes_seen", [])),
            layer_types_seen=list(d.get("layer_types_seen", [])),
        )


def predictor_key(device: str, runtime: str, threads: int, precision: str) -> str:
    return f"{device}/{runtime}/t{threads}/{precision}"


def _ranges(rows: Sequence[Row], terms: Mapping[str, Sequence[str]]) -> dict[str, list[float]]:
    ms = [r.latency_ms for r in rows]
    macs = [r.features.total_macs_m for r in rows]
    out = {"latency_ms": [min(ms), max(ms)], "mmacs": [min(macs), max(macs)]}
    for t, cls in terms.items():
        vals = [term_work(r.features, cls) for r in rows]
        out[t] = [min(vals), max(vals)]
    return out


def _classes_seen(rows: Sequence[Row]) -> list[str]:
    """Fine classes that hold at least 1 % of some calibration network's work in their unit."""
    seen = set()
    for r in rows:
        w = r.features.work
        macs = max(r.features.total_macs_m, 1e-9)
        traffic = max(sum(w.get(c, 0.0) for c in TRAFFIC_CLASSES), 1e-9)
        for c, v in w.items():
            ref = traffic if c in TRAFFIC_CLASSES else macs
            if v > 0.01 * ref:
                seen.add(c)
    return sorted(seen)


def fit_model(rows: Sequence[Row], *, device: str, runtime: str, threads: int, precision: str,
              structure: str = DEFAULT_STRUCTURE, terms: Mapping[str, Sequence[str]] | None = None,
              transfer: Mapping[str, float] | None = None, base: CostModel | None = None, source: Mapping[str, Any] | None = None) -> CostModel:
    """Fit on all rows, then leave each out in turn for the LOO errors. Deterministic."""
    if len(rows) < 3:
        from edgevit.errors import CalibrationError

        raise CalibrationError(f"{device} {runtime} t{threads} {precision}: {len(rows)} networks; a fit needs >= 3")
    the_terms = {k: tuple(v) for k, v in (terms or STRUCTURES[structure]).items()}

    def offsets(rs: Sequence[Row]) -> list[float] | None:
        if base is None:
            return None
        probe = CostModel(device=device, runtime=runtime, threads=threads, precision=precision, structure=structure,
                          terms={}, coef={}, coef_source={}, rows=[], loo=LooStats({}), base=base)
        return [sum(probe.float_ms(r.features).values()) for r in rs]

    coef, src = fit_coefficients(rows, the_terms, transfer=transfer, offset=offsets(rows))
    full = CostModel(device=device, runtime=runtime, threads=threads, precision=precision, structure=structure,
                     terms=the_terms, coef=coef, coef_source=src, rows=[], loo=LooStats({}), base=base)
    errors: dict[str, float] = {}
    row_out = []
    for i, r in enumerate(rows):
        rest = [x for j, x in enumerate(rows) if j != i]
        c_i, s_i = fit_coefficients(rest, the_terms, transfer=transfer, offset=offsets(rest))
        fold = CostModel(device=device, runtime=runtime, threads=threads, precision=precision, structure=structure,
                         terms=the_terms, coef=c_i, coef_source=s_i, rows=[], loo=LooStats({}), base=base)
        loo_ms = fold.predict_ms(r.features)
        errors[r.network] = loo_ms / r.latency_ms - 1.0
        row = {"network": r.network, "measured_ms": r.latency_ms,
               "fitted_ms": round(full.predict_ms(r.features), 3), "loo_ms": round(loo_ms, 3)}
        ex = [t for t in the_terms if t in MAC_TERMS and exercised([r], {t: the_terms[t]})[t] > 0]
        if ex:
            row["exercises"] = ex
        moved = sorted(t for t, s in s_i.items() if s == "transferred")
        if moved:
            row["loo_transferred"] = moved
        row_out.append(row)
    full.rows = row_out
    full.loo = LooStats(errors)
    full.source = dict(source or {})
    full.ranges = _ranges(rows, the_terms)
    full.classes_seen = _classes_seen(rows)
    full.layer_types_seen = sorted({t for r in rows for t in r.features.layer_types})
    full.transfer = {t: round(float(v), 5) for t, v in (transfer or {}).items()}
    return full
