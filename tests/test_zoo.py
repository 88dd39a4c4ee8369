"""Every registered model builds, runs at 224, and has its published size (batch 2: see the conformance tests)."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import edgevit
from edgevit.cli import app
from edgevit.errors import UnknownModelError
from edgevit.models import list_aliases, list_models, model_info
from edgevit.models._macs import count_macs, count_params
from tests.conformance import fixture_names, weights_module

EXPECTED = {
    "fcaformer": {"fcaformer_l0", "fcaformer_l1", "fcaformer_l2", "fcaformer_l3", "fcaformer_l4",
                  "cabvit_h_l1", "cabvit_h_l2", "cabvit_h_l3"},
    "cabvit": {"cabvit_p_l0"},
    "casvit": {"cas_vit_xs", "cas_vit_s", "cas_vit_m", "cas_vit_t"},
    "stvit": {"stvit_small", "stvit_base", "stvit_large"},
}


def test_zoo_has_every_model_and_alias():
    names = set(list_models())
    for family in EXPECTED.values():
        assert family <= names, family - names
    aliases = list_aliases()
    for short, full in [("rcvit_xs", "cas_vit_xs"), ("rcvit_t", "cas_vit_t"), ("svit_s", "stvit_small"),
                        ("svit_b", "stvit_base"), ("svit_l", "stvit_large")]:
        assert aliases[short] == full
        assert model_info(short).name == full


@pytest.mark.parametrize("name", sorted(set().union(*EXPECTED.values())))
def test_builds_runs_and_matches_published_params(name):
    info = model_info(name)
    model = edgevit.create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, info.default_cfg["num_classes"])
    assert torch.isfinite(out).all()
    assert info.params_m is not None, f"{name} has no published parameter count"
    params = count_params(model)
    if name in fixture_names():  # the official model's exact count
        assert params == weights_module().load_manifest(name)["trainable_params"]
    # papers round ("25M"): within 1%, or within the rounding of a figure given to whole millions
    tol = max(0.01 * info.params_m, 0.5 if info.params_m == round(info.params_m) else 0.0)
    if not info.official:
        tol = 0.03 * info.params_m  # built from the paper's description
    assert abs(params / 1e6 - info.params_m) <= tol, (params / 1e6, info.params_m)


@pytest.mark.parametrize("name", ["fcaformer_l1", "cas_vit_xs", "stvit_small"])
def test_macs_close_to_published(name):
    info = model_info(name)
    assert info.gmacs is not None
    gmacs = count_macs(edgevit.create_model(name), 224) / 1e9
    # counting conventions differ slightly (attention matmuls, heads); within 15% is the same model
    assert abs(gmacs - info.gmacs) <= 0.15 * info.gmacs, (gmacs, info.gmacs)


def test_unknown_name_suggests():
    with pytest.raises(UnknownModelError, match="did you mean fcaformer_l1"):
        edgevit.create_model("fcaformer_l11")


def test_cli_models_json_and_unknown_info(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path))
    runner = CliRunner()
    res = runner.invoke(app, ["models", "--json"])  # fast: published figures, counts only where cached
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["name"] for r in rows} == set(list_models()) and all(r["params_m"] is None for r in rows)
    res = runner.invoke(app, ["models", "--family", "casvit", "--count", "--json"])
    assert res.exit_code == 0, res.output
    counted = {r["name"]: r["params_m"] for r in json.loads(res.stdout)}
    assert abs(counted["cas_vit_xs"] - 3.20) < 0.04
    again = {r["name"]: r["params_m"] for r in json.loads(runner.invoke(app, ["models", "--json"]).stdout)}
    assert again["cas_vit_xs"] == counted["cas_vit_xs"] and again["fcaformer_l1"] is None  # cached, per model
    res = runner.invoke(app, ["models", "--family", "cabvit", "--json"])
    assert {r["name"] for r in json.loads(res.stdout)} == {"cabvit_h_l1", "cabvit_h_l2", "cabvit_h_l3", "cabvit_p_l0"}
    res = runner.invoke(app, ["info", "casvit_xss"])
    assert res.exit_code == 2
    assert "unknown model" in res.output and "Traceback" not in res.output


def test_cli_info_counts_params():
    res = CliRunner().invoke(app, ["info", "rcvit_xs", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["name"] == "cas_vit_xs"
    assert abs(data["params_m"] - 3.20) < 0.04
