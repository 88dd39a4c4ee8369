"""The cost model: fit, leave-one-out, intervals, transfer of absent terms, plain-data round trip, and the
shipped board predictors (what the code produces from the shipped tables, and what they claim)."""
from __future__ import annotations

import numpy as np
import pytest

from edgevit.predict.costmodel import (
    STRUCTURES,
    CostModel,
    LooStats,
    Row,
    fit_coefficients,
    fit_model,
    quantized_features,
    term_work,
)
from edgevit.predict.features import NetworkFeatures

TERMS = STRUCTURES["kernels"]
TRUE = {"dense": 0.1, "winograd": 0.05, "depthwise": 0.3, "fc": 0.5, "tokens": 0.25, "traffic": 3.0,
        "weights": 0.2, "io": 0.5, "layers": 0.02}


def synthetic(n: int, seed: int, *, tokens: bool = False, noise: float = 0.08) -> list[Row]:
    """Networks with random work per class; latency = the TRUE linear model x lognormal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        work = {"conv1x1": rng.uniform(50, 2000), "conv3x3s1": rng.uniform(0, 3000) * rng.integers(0, 2),
                "dwconv3": rng.uniform(0, 60) * rng.integers(0, 2), "fc": rng.uniform(0, 60) * rng.integers(0, 2),
                "eltwise": rng.uniform(1, 20), "pool": rng.uniform(0, 3), "conv_io": rng.uniform(2, 20),
                "weights": rng.uniform(1, 40), "gemm": rng.uniform(200, 3000) if tokens else 0.0}
        f = NetworkFeatures(name=f"n{i}", work=work, layers=int(rng.integers(20, 200)), layer_types={})
        ms = sum(TRUE[t] * term_work(f, cls) for t, cls in TERMS.items())
        rows.append(Row(f"n{i}", f, ms * float(np.exp(rng.normal(0, noise)))))
    return rows


def test_fit_recovers_a_known_linear_model_and_is_deterministic() -> None:
    rows = synthetic(60, 0, tokens=False, noise=0.02)
    a = fit_model(rows, device="syn", runtime="ncnn", threads=4, precision="fp32")
    b = fit_model(rows, device="syn", runtime="ncnn", threads=4, precision="fp32")
    assert a.to_dict() == b.to_dict()  # same data, same model, same LOO errors
    assert a.coef["dense"] == pytest.approx(TRUE["dense"], rel=0.1)
    assert a.coef["winograd"] == pytest.approx(TRUE["winograd"], rel=0.15)
    assert a.loo.median_abs < 0.05
    assert a.coef_source["tokens"] == "absent"  # no synthetic CNN has token GEMMs
    assert all(v >= 0 for v in a.coef.values())


def test_loo_errors_are_really_out_of_sample() -> None:
    rows = synthetic(25, 1)
    m = fit_model(rows, device="syn", runtime="ncnn", threads=4, precision="fp32")
    r = rows[3]
    rest = rows[:3] + rows[4:]
    coef, _ = fit_coefficients(rest, m.terms)
    by_hand = sum(coef[t] * term_work(r.features, cls) for t, cls in m.terms.items())
    assert m.loo.errors[r.network] == pytest.approx(by_hand / r.latency_ms - 1)
    assert m.rows[3]["fitted_ms"] != m.rows[3]["loo_ms"]  # the in-sample fit is recorded separately


def test_intervals_contain_the_claimed_share_of_errors() -> None:
    rows = synthetic(40, 2, noise=0.12)
    m = fit_model(rows, device="syn", runtime="ncnn", threads=4, precision="fp32")
    lo, hi = m.loo.quantiles()
    inside = np.mean([lo <= e <= hi for e in m.loo.errors.values()])
    assert inside >= 0.8 - 1 / len(rows)
    # and on networks the model never saw, drawn the same way: close to the claimed 80 %
    fresh = synthetic(300, 99, noise=0.12)
    covered = []
    for r in fresh:
        pred = m.predict_ms(r.features)
        low, high = pred / (1 + hi), pred / (1 + lo)
        covered.append(low <= r.latency_ms <= high)
    assert 0.65 <= np.mean(covered) <= 0.95


def test_absent_term_is_transferred_from_the_dense_rate() -> None:
    rows = synthetic(20, 3)  # no token GEMMs
    coef, source = fit_coefficients(rows, TERMS, transfer={"tokens": 2.5})
    assert source["tokens"] == "transferred"
    assert coef["tokens"] == pytest.approx(2.5 * coef["dense"])
    coef2, source2 = fit_coefficients(rows + synthetic(5, 4, tokens=True), TERMS, transfer={"tokens": 2.5})
    assert source2["tokens"] == "fitted" and coef2["tokens"] != pytest.approx(2.5 * coef2["dense"])


def test_cost_model_round_trips_as_plain_json() -> None:
    import json

    rows = synthetic(15, 5)
    m = fit_model(rows, device="syn", runtime="ncnn", threads=1, precision="fp32", transfer={"tokens": 3.0})
    back = CostModel.from_dict(json.loads(json.dumps(m.to_dict())))
    f = synthetic(1, 6, tokens=True)[0].features
    assert back.predict_ms(f) == pytest.approx(m.predict_ms(f))
    assert back.loo.summary() == m.loo.summary()


def test_quantized_features_move_convs_to_int8_classes_only() -> None:
    f = NetworkFeatures("x", {"conv1x1": 10.0, "dwconv3": 2.0, "gemm": 5.0}, layers=3, layer_types={})
    q = quantized_features(f)
    assert q.work == {"gemm": 5.0, "conv1x1_int8": 10.0, "dwconv3_int8": 2.0}


# ------------------------------------------------------------------------------------------ shipped predictors
def test_shipped_predictors_are_what_refit_produces() -> None:
    """predictors.json is the output of `edgevit calibrate --refit` on the shipped tables (no hand edits)."""
    from edgevit.predict.boards import refit
    from edgevit.predict.data import predictors_data

    shipped = predictors_data()
    doc = refit(structure=shipped["structure"], int8_structure=shipped["int8_structure"])
    for key in ("rk3288/ncnn/t4/fp32", "rpi4/ncnn/t4/fp32", "rk3288/ncnn/t4/int8"):
        assert doc["predictors"][key]["coef_ms_per_unit"] == shipped["predictors"][key]["coef_ms_per_unit"], key
        assert doc["predictors"][key]["loo"] == shipped["predictors"][key]["loo"], key


def test_shipped_predictor_claims_match_its_rows() -> None:
    from edgevit.predict.data import predictors_data

    p = predictors_data()["predictors"]["rk3288/ncnn/t4/fp32"]
    errs = [r["loo_ms"] / r["measured_ms"] - 1 for r in p["rows"]]
    assert np.median(np.abs(errs)) == pytest.approx(p["loo"]["median_abs"], abs=1e-3)
    assert LooStats(dict(zip([r["network"] for r in p["rows"]], errs, strict=True))).within(0.2) == pytest.approx(
        p["loo"]["within_20"], abs=1e-3)
    assert p["coef_source"]["tokens"] == "transferred"  # RK3288's table has no transformer
    assert p["source"]["published"]["date"] == "2022-01-28"


def test_extrapolation_flags() -> None:
    from edgevit.bench.profiles import load_profile
    from edgevit.predict.api import _board_models, predict_features

    profile = load_profile("arm-a17")
    model = _board_models("rk3288")["rk3288/ncnn/t4/fp32"]
    cnn = NetworkFeatures("cnn", {"conv1x1": 300.0, "conv3x3s2": 10.0, "dwconv3": 20.0, "eltwise": 6.0, "pool": 0.1,
                                  "conv_io": 8.0, "dw_io": 6.0, "weights": 3.0}, layers=66, layer_types={})
    p = predict_features(cnn, model, profile)
    assert not p.extrapolation and p.interval_ms[0] < p.predicted_ms < p.interval_ms[1]
    vit = NetworkFeatures("vit", {"convkxk": 30.0, "gemm": 1000.0, "matmul": 180.0, "norm": 1.0, "transcend": 2.0,
                                  "softmax": 1.5, "eltwise": 3.0, "conv_io": 6.0, "weights": 6.0}, layers=100,
                          layer_types={})
    p = predict_features(vit, model, profile)
    text = " ".join(p.extrapolation)
    assert "token GEMMs" in text and "no rk3288 calibration network exercises it" in text
    assert "LayerNorm" in text or "Gemm" in text
    huge = NetworkFeatures("huge", {k: v * 50 for k, v in cnn.work.items()}, layers=66, layer_types={})
    assert any("far outside the calibrated range" in w for w in predict_features(huge, model, profile).extrapolation)
