"""What each ncnn int8 candidate would cost on a device not at hand: the latency predictor's prices.

For a profile with a board predictor (`predict_board`, fitted on that board's published benchncnn
tables: the RK3288 for arm-a17), a layer's float cost is its work priced by the fp32 model's MAC terms
and its int8 cost the same work priced by the int8 model's int8 terms (`edgevit.predict.costmodel`).
Per-layer overhead and activation traffic are fitted per network, not per layer, so they decide
nothing here. A layer whose int8 kernel the board's tables never exercised (Gemm and InnerProduct on
the RK3288: its int8 tables hold CNNs only) has no int8 price: it is reported unpriced, not guessed.
The whole-model verdict compares the two predictions with their intervals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgevit.errors import ConfigError
from edgevit.quantize.costs import NodeCost

OPTION_DEVICE = "int8_device"  # -O int8_device=PROFILE: choose ncnn int8 layers by that device's predictor


@dataclass
class PredictedCosts:
    """Per-layer predicted int8 and float ms on one device, and the predictors behind them."""

    device: str
    threads: int
    description: str
    costs: dict[str, NodeCost] = field(default_factory=dict)
    unpriced: dict[str, str] = field(default_factory=dict)  # layer -> why it has no int8 price

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "threads": self.threads, "cost_source": self.description,
                "costs": {n: {"int8_ms": round(c.int8_ms, 4), "float_ms": round(c.float_ms, 4)}
                          for n, c in self.costs.items()},
                "unpriced": self.unpriced}


def _models(device: str, threads: int | None) -> tuple[Any, Any, Any]:
    """(profile, fp32 model, int8 model) of the device's ncnn predictor; ConfigError when it has none."""
    from edgevit.bench.profiles import load_profile
    from edgevit.predict.api import choose_model

    profile = load_profile(device)
    if not profile.predict_board:
        raise ConfigError(f"{OPTION_DEVICE}={device}: the profile names no predict_board, so there are no "
                          "per-layer int8 prices for it")
    fp32, _ = choose_model(profile, runtime="ncnn", threads=threads, precision="fp32")
    int8, _ = choose_model(profile, runtime="ncnn", threads=threads, precision="int8")
    return profile, fp32, int8


def _one_layer(work: dict[str, float]) -> Any:
    from edgevit.predict.features import NetworkFeatures

    return NetworkFeatures(name="layer", work=dict(work), layers=0, layer_types={})


def _mac_ms(model: Any, work: dict[str, float], terms: tuple[str, ...]) -> float:
    from edgevit.predict.costmodel import predict_terms

    parts = predict_terms(_one_layer(work), model.terms, model.coef)
    return float(sum(v for t, v in parts.items() if t in terms))


def layer_costs(param_text: str, input_shape: tuple[int, ...], input_name: str, names: list[str], *,
                device: str, threads: int | None) -> PredictedCosts:
    """Predicted int8 and float ms of each layer in `names` of an fp32 ncnn net on `device`."""
    from edgevit.predict.costmodel import INT8_TERMS, MAC_TERMS, quantized_features
    from edgevit.predict.features import ncnn_features

    profile, fp32, int8 = _models(device, threads)
    feats = ncnn_features(param_text, "model", {input_name: tuple(input_shape)})
    per_layer = {lc.name: lc for lc in feats.per_layer}
    out = PredictedCosts(device=profile.name, threads=fp32.threads,
                         description=f"latency predictor for {profile.name}: fp32 {fp32.describe()}; "
                                     f"int8 {int8.describe()}")
    float_terms = tuple(t for t in MAC_TERMS if t not in INT8_TERMS)
    for name in names:
        lc = per_layer.get(name)
        if lc is None:
            out.unpriced[name] = "not in the predictor's view of the graph"
            continue
        q = quantized_features(_one_layer(lc.work)).work
        if not any(c.endswith("_int8") for c in q):
            out.unpriced[name] = (f"{lc.type}: the board's int8 tables never ran this kernel class "
                                  f"({', '.join(sorted(lc.work))}), so the predictor has no int8 price")
            continue
        out.costs[name] = NodeCost(int8_ms=_mac_ms(int8, q, INT8_TERMS),
                                   float_ms=_mac_ms(fp32, lc.work, float_terms))
    return out


def whole_model(param_fp32: str, param_int8: str, input_shape: tuple[int, ...], input_name: str, *,
                device: str, threads: int | None) -> dict[str, Any]:
    """Predicted fp32 and int8 latency of the two nets on `device` with their 80 % intervals, and the
    verdict: `slower` only when int8's interval lies wholly above fp32's and neither prediction
    extrapolates beyond what the board's tables cover; `pays` when wholly below; else `inconclusive`."""
    from edgevit.predict.api import extrapolation_warnings, interval_ms
    from edgevit.predict.features import ncnn_features

    _, fp32, int8 = _models(device, threads)
    shapes = {input_name: tuple(input_shape)}
    res: dict[str, Any] = {}
    extrapolates: list[str] = []
    for key, model, text in (("fp32", fp32, param_fp32), ("int8", int8, param_int8)):
        feats = ncnn_features(text, key, shapes)
        parts = model.term_ms(feats)
        ms = float(sum(parts.values()))
        res[key] = {"predicted_ms": round(ms, 2), "interval_ms": [round(v, 2) for v in interval_ms(model, parts)]}
        extrapolates += [f"{key}: {w}" for w in extrapolation_warnings(model, feats, parts, ms)]
    lo8, hi8 = res["int8"]["interval_ms"]
    lo32, hi32 = res["fp32"]["interval_ms"]
    res["verdict"] = ("pays" if hi8 < lo32 else "slower" if lo8 > hi32 and not extrapolates else "inconclusive")
    res["ratio"] = round(res["fp32"]["predicted_ms"] / res["int8"]["predicted_ms"], 3)
    res["extrapolates"] = extrapolates
    return res
