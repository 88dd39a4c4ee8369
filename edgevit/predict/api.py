"""`predict(...)`: latency of models or artifacts on a device profile, from its fitted cost model.

Which predictors a profile has: a profile naming `predict_board` uses the board cost models fitted on
that board's published tables (`predictors.json`); the `host` profile uses this machine's calibrations
(`edgevit calibrate --device host`). `available(profile)` lists them; `prediction_for_case(...)` is the
hook for bench tables (None where no predictor applies, never an error).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgevit.errors import ConfigError
from edgevit.predict.costmodel import (
    HUMAN,
    INTERVAL,
    MAC_TERMS,
    TRAFFIC_CLASSES,
    CostModel,
    quantized_features,
)
from edgevit.predict.features import NetworkFeatures

SCHEMA = "edgevit.predict/1"
MIN_SHARE = 0.05  # a term or class below this share of a prediction is not worth a warning
RANGE_FACTOR = 2.0  # "far outside the calibrated range": beyond 1/2x .. 2x of the calibration networks
CLASS_NAMES = {
    "gemm": "Gemm/InnerProduct on tokens", "matmul": "MatMul/attention", "softmax": "Softmax",
    "norm": "LayerNorm/normalisation", "transcend": "GELU/Sigmoid/Swish (transcendental)", "layout": "Permute/Reshape/Concat/Slice",
    "eltwise": "elementwise", "pool": "pooling", "dwconvk": "depthwise conv 5x5+", "dwconv3": "depthwise conv 3x3",
    "conv_group": "grouped conv", "deconv": "deconvolution", "convkxk": "conv with kernels other than 1x1/3x3",
    "conv3x3s1": "3x3 stride-1 conv", "conv3x3s2": "strided 3x3 conv", "conv1x1": "1x1 conv", "fc": "fully connected",
}


@dataclass
class Prediction:
    """One predicted latency with its interval, its calibration and what it extrapolates."""

    model: str
    artifact: str
    device: str
    device_title: str
    runtime: str
    threads: int
    precision: str
    predicted_ms: float
    interval_ms: tuple[float, float]
    interval_level: float
    calibration: str
    predictor: str
    board: str = ""
    extrapolation: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    breakdown_ms: dict[str, float] = field(default_factory=dict)
    mmacs: float = 0.0
    layers: int = 0
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def extrapolates(self) -> bool:
        return bool(self.extrapolation)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval_ms"] = [round(self.interval_ms[0], 2), round(self.interval_ms[1], 2)]
        d["predicted_ms"] = round(self.predicted_ms, 2)
        d["breakdown_ms"] = {k: round(v, 2) for k, v in self.breakdown_ms.items()}
        d["extrapolates"] = self.extrapolates
        return d


# ------------------------------------------------------------------------------------------ predictors
@dataclass(frozen=True)
class PredictorRef:
    """A predictor available to a profile: its key and where it comes from."""

    key: str
    runtime: str
    threads: int
    precision: str
    origin: str  # "published tables of <board>" | "host calibration <date>"
    networks: int
    loo_median: float


def _board_models(board: str) -> dict[str, CostModel]:
    from edgevit.predict.data import predictors_data

    doc = predictors_data()
    models: dict[str, CostModel] = {}
    entries = {k: v for k, v in doc["predictors"].items() if v["device"] == board}
    for k, v in sorted(entries.items(), key=lambda kv: kv[1].get("base") is not None):  # fp32 bases first
        base = models.get(v["base"]) if v.get("base") else None
        models[k] = CostModel.from_dict(v, base=base)
    return models


def _host_models() -> dict[str, CostModel]:
    from edgevit.bench.profiles import detect_host
    from edgevit.predict.calibrate import load_host_model
    from edgevit.predict.data import host_files

    fp = detect_host().fingerprint
    out = {}
    for f in host_files():
        m = load_host_model(f)
        if m is not None and m.source.get("fingerprint") == fp:
            out[m.key] = m
    return out


def profile_models(profile: Any) -> dict[str, CostModel]:
    """Every cost model a device profile can predict with (empty if none)."""
    if profile.detected:
        return _host_models()
    if profile.predict_board:
        return _board_models(profile.predict_board)
    return {}


def available(profile: Any) -> list[PredictorRef]:
    """What a profile can predict, and from what data (for `edgevit devices` and error messages)."""
    out = []
    for k, m in profile_models(profile).items():
        origin = (f"published ncnn tables of {m.source.get('board', m.device)}" if not profile.detected
                  else f"host calibration {m.source.get('created', '')[:10]}")
        out.append(PredictorRef(k, m.runtime, m.threads, m.precision, origin, len(m.rows), m.loo.median_abs))
    return sorted(out, key=lambda r: (r.runtime, r.threads, r.precision))


def describe_available(profile: Any) -> str:
    """One line: 'ncnn t1/t4 fp32/int8' (threads and precisions per runtime), or 'none'."""
    refs = available(profile)
    if not refs:
        return "none"
    by: dict[str, tuple[set[int], set[str]]] = {}
    for r in refs:
        th, pr = by.setdefault(r.runtime, (set(), set()))
        th.add(r.threads)
        pr.add(r.precision)
    return ", ".join(f"{rt} t{'/'.join(map(str, sorted(th)))} {'/'.join(sorted(pr))}" for rt, (th, pr) in sorted(by.items()))


def choose_model(profile: Any, *, runtime: str | None, threads: int | None, precision: str | None) -> tuple[CostModel, list[str]]:
    """The cost model for these settings (defaults from the profile), or a one-line ConfigError."""
    models = profile_models(profile)
    if not models:
        hint = ("run `edgevit calibrate --device host` first" if profile.detected else
                "it names no predict_board with published tables")
        raise ConfigError(f"no latency predictor for {profile.name}: {hint}")
    notes = []
    runtimes = sorted({m.runtime for m in models.values()})
    rt = runtime or (profile.runtime if profile.runtime in runtimes else runtimes[0])
    if runtime is None and rt != profile.runtime:
        notes.append(f"runtime {rt}: the profile's {profile.runtime} has no calibration data for {profile.name}")
    th = threads or profile.threads
    pr = precision or "fp32"
    from edgevit.predict.costmodel import predictor_key

    device = next(iter(models.values())).device
    key = predictor_key(device, rt, th, pr)
    if key not in models:
        have = "; ".join(f"{r.runtime} {r.threads} threads {r.precision}" for r in available(profile))
        raise ConfigError(f"no calibration data for {profile.name} with {rt}, {th} threads, {pr}; it has: {have}")
    return models[key], notes


# ------------------------------------------------------------------------------------------ features
def artifact_features(path: str | Path) -> NetworkFeatures:
    """Cost features of an exported artifact: an ncnn folder/.param or an .onnx file."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".param":
        from edgevit.predict.features import ncnn_features

        param = p / "model.param" if p.is_dir() else p
        if not param.is_file():
            raise ConfigError(f"{p}: no model.param (not an ncnn artifact)")
        manifest = _ncnn_manifest(param)
        inputs = {}
        if manifest.get("input_shape") and manifest.get("inputs"):
            inputs = {manifest["inputs"][0]: tuple(int(x) for x in manifest["input_shape"])}
        return ncnn_features(param.read_text(), _model_name(p), inputs)
    if p.suffix == ".onnx":
        from edgevit.predict.onnx_graph import onnx_features

        return onnx_features(p, _model_name(p))
    raise ConfigError(f"{p.name}: predict reads ncnn (.ncnn folder, .param) and ONNX (.onnx) graphs")


def _ncnn_manifest(param: Path) -> dict[str, Any]:
    import json

    m = param.parent / "model.json"
    try:
        return json.loads(m.read_text()) if m.is_file() else {}
    except (OSError, ValueError):
        return {}


def _model_name(p: Path) -> str:
    from edgevit.artifact import read_record

    try:
        rec = read_record(p)
    except ConfigError:
        rec = None
    if rec is not None:
        return rec.model
    name = p.name
    for suffix in (".ncnn", ".param", ".onnx"):
        name = name.removesuffix(suffix)
    return name


GRAPH_OF_RUNTIME = {"ncnn": ("ncnn", (".ncnn", ".param")), "onnxruntime": ("onnx", (".onnx",))}


def input_features(item: str, runtime: str, *, img_size: int | None = None,
                   log: Callable[[str], None] | None = None) -> tuple[NetworkFeatures, str]:
    """Features of a model name (exported into the bench cache for the runtime's graph) or an artifact."""
    target, suffixes = GRAPH_OF_RUNTIME.get(runtime, ("", ()))
    if not target:
        raise ConfigError(f"no graph reader for runtime {runtime!r} (have: {', '.join(GRAPH_OF_RUNTIME)})")
    p = Path(item)
    if p.exists():
        if not (p.name.endswith(suffixes) or (p.is_dir() and (p / "model.param").is_file() and runtime == "ncnn")):
            raise ConfigError(f"{p.name}: the {runtime} predictor is calibrated on {target} graphs; give a "
                              f"{'/'.join(suffixes)} artifact or a model name")
        return artifact_features(p), str(p)
    from edgevit.cache import get_artifact
    from edgevit.models import resolve_name

    name = resolve_name(item)
    art = get_artifact(name, target=target, precision="fp32", img_size=img_size)
    feats = artifact_features(art.path)
    feats.name = name
    return feats, str(art.path)


# ------------------------------------------------------------------------------------------ predicting
def _transfer_errors(model: CostModel, term: str) -> list[float]:
    if model.device.startswith("host"):
        return [model.loo.errors[r["network"]] for r in model.rows if term in r.get("exercises", [])]
    from edgevit.predict.data import predictors_data

    return list(predictors_data()["transfer"]["errors"].get(term, []))


def _quantiles(errors: Sequence[float]) -> tuple[float, float]:
    import numpy as np

    e = np.asarray(errors, dtype=float)
    return float(np.quantile(e, INTERVAL[0])), float(np.quantile(e, INTERVAL[1]))


def _owner(model: CostModel, key: str) -> tuple[CostModel, str]:
    """The model that priced a part: int8 models price 'float <term>' parts with their fp32 base."""
    if key.startswith("float ") and model.base is not None:
        return model.base, key.removeprefix("float ")
    return model, key


def interval(model: CostModel, parts: dict[str, float]) -> tuple[float, float, list[str]]:
    """Relative-error quantiles (q10, q90) for a prediction made of `parts` (ms per term).

    The board's LOO errors cover what its own networks exercise; a transferred term, and the token
    GEMM term (one transformer per table at most), use the errors of the transfer test. Parts are
    combined by their share of the prediction (errors assumed fully correlated: conservative)."""
    total = sum(parts.values()) or 1.0
    base_lo, base_hi = model.loo.quantiles()
    lo = hi = 0.0
    used = []
    for key, ms in parts.items():
        share = ms / total
        owner, term = _owner(model, key)
        special = owner.coef_source.get(term) == "transferred" or term == "tokens"
        errs = _transfer_errors(owner, term) if special else []
        if special and len(errs) >= 5 and share >= 0.01:
            q_lo, q_hi = _quantiles(errs)
            used.append(key)
        else:
            q_lo, q_hi = base_lo, base_hi
        lo += share * q_lo
        hi += share * q_hi
    return lo, hi, used


def interval_ms(model: CostModel, parts: dict[str, float]) -> tuple[float, float]:
    """The predicted latency's interval (ms) from the model's leave-one-out error quantiles."""
    predicted = float(sum(parts.values()))
    q_lo, q_hi, _ = interval(model, {k: v for k, v in parts.items() if v > 0})
    # error e = predicted / actual - 1, so actual = predicted / (1 + e)
    return predicted / (1 + max(q_hi, -0.9)), predicted / (1 + max(q_lo, -0.9))


def extrapolation_warnings(model: CostModel, feats: NetworkFeatures, parts: dict[str, float],
                           predicted: float) -> list[str]:
    """Where a prediction rests on what the model's calibration networks never showed (one line each)."""
    total = sum(parts.values()) or 1.0
    where = model.source.get("board_id") or model.device
    out = []
    for key, ms in parts.items():
        if ms / total < MIN_SHARE:
            continue
        owner, term = _owner(model, key)
        if owner.coef_source.get(term) == "transferred":
            ratio = owner.transfer.get(term, 0.0)
            out.append(f"{HUMAN.get(term, term)} ({ms / total:.0%} of the prediction): no {where} calibration network "
                       f"exercises it; priced at {ratio:.2f}x {where}'s dense-conv rate (median of the other boards)")
        elif owner.coef_source.get(term) == "absent" and term in MAC_TERMS:
            out.append(f"{HUMAN.get(term, term)}: absent from {where}'s calibration networks and not transferable; "
                       "priced at 0")
    for key in ("tokens", "float tokens"):
        owner, term = _owner(model, key)
        if parts.get(key, 0) / total >= MIN_SHARE and owner.coef_source.get(term) == "fitted":
            n = sum(1 for r in owner.rows if "tokens" in r.get("exercises", [])) or 1
            out.append(f"token GEMMs ({parts[key] / total:.0%} of the prediction) rest on {n} transformer "
                       f"network(s) of {where}'s calibration set")
    # fine classes the calibration set never showed (e.g. LayerNorm, GELU on a CNN-only table)
    macs = max(feats.total_macs_m, 1e-9)
    traffic = max(sum(feats.work.get(c, 0.0) for c in TRAFFIC_CLASSES), 1e-9)
    for cls, v in feats.work.items():
        base_cls = cls.removesuffix("_int8")
        if v <= 0 or cls in model.classes_seen or base_cls in model.classes_seen or cls in ("weights", "conv_io", "dw_io"):
            continue
        share = v / (traffic if base_cls in TRAFFIC_CLASSES else macs)
        if share >= MIN_SHARE:
            out.append(f"{CLASS_NAMES.get(base_cls, base_cls)} ({share:.0%} of the {'traffic' if base_cls in TRAFFIC_CLASSES else 'MACs'}) "
                       f"never appears in {where}'s calibration networks")
    if model.layer_types_seen:
        from edgevit.predict.features import NO_WORK

        unseen = {t: n for t, n in feats.layer_types.items() if t not in model.layer_types_seen and t not in NO_WORK}
        if unseen:
            out.append(f"layer types no {where} calibration network has (priced by their kernel class): "
                       + ", ".join(f"{t} x{n}" for t, n in sorted(unseen.items(), key=lambda kv: -kv[1])))
    lo_ms, hi_ms = model.ranges.get("latency_ms", [0, float("inf")])
    if predicted > RANGE_FACTOR * hi_ms or predicted < lo_ms / RANGE_FACTOR:
        out.append(f"{predicted:.0f} ms is far outside the calibrated range {lo_ms:.0f}-{hi_ms:.0f} ms")
    lo_m, hi_m = model.ranges.get("mmacs", [0, float("inf")])
    if feats.total_macs_m > RANGE_FACTOR * hi_m or feats.total_macs_m < lo_m / RANGE_FACTOR:
        out.append(f"{feats.total_macs_m:.0f} MMACs is far outside the calibrated range {lo_m:.0f}-{hi_m:.0f} MMACs")
    if feats.unknown_types:
        out.append(f"layer types with no cost model (priced at 0): {', '.join(feats.unknown_types)}")
    return out


def _notes(model: CostModel, profile: Any, feats: NetworkFeatures, precision: str) -> list[str]:
    notes = []
    if model.runtime == "ncnn" and not profile.detected:
        notes.append("board figures are benchncnn's defaults: fp16 storage, and fp16 arithmetic where the CPU has "
                     "it (ARMv8.2+); edgevit's fp32 ncnn runner turns fp16 off")
    if precision == "int8" and not any(k.endswith("_int8") and v for k, v in feats.work.items()):
        notes.append("int8 of an fp32 graph: assumes ncnn2int8 quantizes Convolution/ConvolutionDepthWise; "
                     "Gemm/MatMul/attention stay fp32 as in the boards' int8 data")
    heading = str(model.source.get("board", ""))
    m = re.search(r"(\d+(?:\.\d+)?)\s*GHz", heading, re.IGNORECASE)
    if m and profile.frequency_ghz and abs(float(m.group(1)) - profile.frequency_ghz) > 0.05:
        notes.append(f"the board data ran at {m.group(1)} GHz; the profile says {profile.frequency_ghz:g} GHz")
    published = model.source.get("published") or {}
    if published:
        notes.append(f"board data published {published.get('date')} (ncnn release before it: "
                     f"{published.get('ncnn_release_before') or 'unknown'})")
    return notes


def predict_features(feats: NetworkFeatures, model: CostModel, profile: Any, *, artifact: str = "",
                     extra_notes: Sequence[str] = ()) -> Prediction:
    """A Prediction from features already computed."""
    f = quantized_features(feats) if model.precision == "int8" else feats
    parts = model.term_ms(f)
    predicted = float(sum(parts.values()))
    if predicted <= 0:
        raise ConfigError(f"{feats.name}: nothing in this graph has a cost in the {model.key} model")
    low, high = interval_ms(model, parts)
    return Prediction(
        model=feats.name, artifact=artifact, device=profile.name, device_title=profile.title, runtime=model.runtime,
        threads=model.threads, precision=model.precision, predicted_ms=predicted, interval_ms=(low, high),
        interval_level=INTERVAL[1] - INTERVAL[0], calibration=model.describe(), predictor=model.key,
        board=model.source.get("board", ""), extrapolation=extrapolation_warnings(model, f, parts, predicted),
        notes=[*extra_notes, *_notes(model, profile, feats, model.precision)],
        breakdown_ms={k: v for k, v in parts.items() if v > 0}, mmacs=round(feats.total_macs_m, 1),
        layers=feats.layers, source={k: model.source[k] for k in ("board", "repository", "path", "readme_line",
                                                                  "published", "read_at_commit", "created",
                                                                  "fingerprint", "cpu") if k in model.source},
    )


def predict(inputs: Sequence[str], *, device: str = "host", runtime: str | None = None, threads: int | None = None,
            precision: str | None = None, img_size: int | None = None,
            log: Callable[[str], None] | None = None) -> list[Prediction]:
    """Predict every input (model names or artifacts) on a device profile.

    >>> [p.predicted_ms for p in predict(["fcaformer_l1"], device="arm-a17")]
    """
    from edgevit.bench.profiles import load_profile

    if not inputs:
        raise ConfigError("nothing to predict: give model names or artifact files")
    profile = load_profile(device)
    model, notes = choose_model(profile, runtime=runtime, threads=threads, precision=precision)
    out = []
    for item in inputs:
        feats, artifact = input_features(item, model.runtime, img_size=img_size, log=log)
        out.append(predict_features(feats, model, profile, artifact=artifact, extra_notes=notes))
    return out


def prediction_for_case(model_or_artifact: str, *, device: str, runtime: str | None = None,
                        threads: int | None = None, precision: str | None = None,
                        img_size: int | None = None) -> Prediction | None:
    """The bench hook: the predicted figure for one case, or None when the device has no predictor for
    these settings (bench then shows no prediction; it never fails because of this)."""
    from edgevit.bench.profiles import load_profile
    from edgevit.errors import EdgeVitError

    try:
        profile = load_profile(device)
        model, notes = choose_model(profile, runtime=runtime, threads=threads, precision=precision)
        feats, artifact = input_features(model_or_artifact, model.runtime, img_size=img_size)
    except EdgeVitError:
        return None
    return predict_features(feats, model, profile, artifact=artifact, extra_notes=notes)
