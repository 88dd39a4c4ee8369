"""CAS-ViT loads the official checkpoints (fixtures) strictly and computes the official function."""
from __future__ import annotations

from functools import cache

import pytest
import torch

import edgevit
from edgevit.errors import CheckpointError
from edgevit.models import model_info
from edgevit.models._macs import count_params
from edgevit.models.casvit import tiny
from tests.conformance import assert_conforms, fixture_names, official_state_dict, reference_input, weights_module

NAMES = ["cas_vit_xs", "cas_vit_s", "cas_vit_m", "cas_vit_t"]


@cache
def _state(name: str) -> dict[str, torch.Tensor]:
    return official_state_dict(name)


def test_every_casvit_fixture_is_covered():
    assert {n for n in fixture_names() if n.startswith("cas_vit")} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_official_checkpoint_conforms(name):
    model = edgevit.create_model(name, checkpoint=_state(name)).eval()
    with torch.no_grad():
        for batch in (1, 2):
            assert_conforms(name, model(reference_input(name, batch)))


@pytest.mark.parametrize("wrap", ["model", "state_dict", "module_prefix"])
def test_wrapped_checkpoints_load(wrap):
    sd = _state("cas_vit_xs")
    ckpt = {f"module.{k}": v for k, v in sd.items()} if wrap == "module_prefix" else {wrap: sd, "epoch": 3}
    model = edgevit.create_model("rcvit_xs", checkpoint=ckpt).eval()
    with torch.no_grad():
        assert_conforms("cas_vit_xs", model(reference_input("cas_vit_xs", 1)))


def test_our_own_state_dict_round_trips():
    src = edgevit.create_model("cas_vit_xs", checkpoint=_state("cas_vit_xs"))
    dst = edgevit.create_model("cas_vit_xs", checkpoint=src.state_dict()).eval()
    with torch.no_grad():
        assert_conforms("cas_vit_xs", dst(reference_input("cas_vit_xs", 1)))


def test_checkpoint_of_another_model_is_a_clear_error():
    w = weights_module()
    other = {k["name"]: torch.zeros(k["shape"]) for k in w.load_manifest("cabvit_p_l0")["keys"]}
    with pytest.raises(CheckpointError) as err:
        edgevit.create_model("cas_vit_xs", checkpoint=other)
    msg = str(err.value)
    assert "cas_vit_xs" in msg and "missing keys: stem.conv1.weight" in msg and "unexpected keys:" in msg


def test_checkpoint_of_another_size_reports_shapes():
    with pytest.raises(CheckpointError, match="shape mismatch: stages.1.downsample.conv.weight"):
        edgevit.create_model("cas_vit_s", checkpoint=_state("cas_vit_xs"))


@pytest.mark.parametrize("name", NAMES)
def test_params_match_published(name):
    info = model_info(name)
    params_m = count_params(edgevit.create_model(name)) / 1e6
    assert info.params_m is not None and abs(params_m - info.params_m) <= 0.01 * info.params_m


@pytest.mark.parametrize("alias", ["rcvit_xs", "rcvit_s", "rcvit_m", "rcvit_t"])
def test_aliases_resolve(alias):
    assert model_info(alias).name == "cas_vit_" + alias.split("_")[1]
    assert model_info(alias).family == "casvit"


def test_factory_keywords():
    model = edgevit.create_model("cas_vit_xs", num_classes=10, drop_path_rate=0.1, img_size=256).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 10)
    features = edgevit.create_model("cas_vit_xs", num_classes=0).eval()
    with torch.no_grad():
        assert features(torch.randn(1, 3, 224, 224)).shape == (1, 220)


def test_distilled_training_returns_both_heads():
    model = tiny()
    model.set_distilled_training(True)
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert isinstance(out, tuple) and len(out) == 2
    assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@pytest.mark.parametrize("size", [64, 96, 128])
def test_tiny_runs_at_sizes_divisible_by_32(size):
    with torch.no_grad():
        assert tiny(num_classes=10, img_size=size).eval()(torch.randn(2, 3, size, size)).shape == (2, 10)


def test_tiny_trains_a_step():
    torch.manual_seed(0)
    model = tiny(num_classes=10, img_size=64).train()
    x, y = torch.randn(16, 3, 64, 64), torch.randint(0, 10, (16,))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < losses[0]
    assert count_params(model) < 200_000
