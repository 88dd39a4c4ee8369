"""FcaFormer / CabViT: official checkpoints load strictly and reproduce the official logits."""
from __future__ import annotations

import pytest
import torch

import edgevit
from edgevit.models import cabvit, fcaformer
from edgevit.models._macs import count_params
from tests.conformance import assert_conforms, official_state_dict, reference_input
from tests.fcaformer_official import FIXTURES, official_model


@pytest.mark.parametrize("name", FIXTURES)
def test_official_checkpoint_conforms(name):
    model = official_model(name)  # create_model(name, checkpoint=official_state_dict(name)), cached
    with torch.no_grad():
        assert_conforms(name, model(reference_input(name, 1)))
        assert_conforms(name, model(reference_input(name, 2)))  # batch 2: rows repeat, nothing baked in


def test_wrapped_checkpoint_loads():
    sd = official_state_dict("fcaformer_l1")
    wrapped = {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 300}
    model = edgevit.create_model("fcaformer_l1", checkpoint=wrapped, init_weights=False).eval()
    with torch.no_grad():
        assert_conforms("fcaformer_l1", model(reference_input("fcaformer_l1", 1)))


@pytest.mark.parametrize("name, published, tol", [("fcaformer_l1", 6.2, 0.01), ("fcaformer_l2", 16.3, 0.01),
                                                  ("fcaformer_l0", 5.9, 0.03)])
def test_parameter_counts(name, published, tol):
    model = official_model(name) if name in FIXTURES else edgevit.create_model(name, init_weights=False)
    params_m = count_params(model) / 1e6
    assert abs(params_m - published) <= tol * published, params_m


def test_cross_token_window():
    """FcaFormer sees the last 12 blocks' cross tokens, CabViT-H all of them."""
    fca = fcaformer.FcaFormer(embed_dims=(8, 8, 16, 16), depths=(1, 1, 14, 1), num_heads=(2, 2), img_size=64)
    cab = fcaformer.FcaFormer(embed_dims=(8, 8, 16, 16), depths=(1, 1, 14, 1), num_heads=(2, 2), img_size=64,
                              window=None)
    assert [b.attn.num_cross for b in fca.stages[2].blocks][-3:] == [11, 12, 12]
    assert [b.attn.num_cross for b in cab.stages[2].blocks][-3:] == [11, 12, 13]
    with torch.no_grad():  # cross-token counts match the bias shapes only if the window slicing is right
        assert fca.eval()(torch.randn(1, 3, 64, 64)).shape == cab.eval()(torch.randn(1, 3, 64, 64)).shape


@pytest.mark.parametrize("family", [fcaformer, cabvit])
def test_tiny_trains_one_step(family):
    torch.manual_seed(0)
    model = family.tiny(num_classes=10, img_size=64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    model.eval()
    assert model(torch.randn(3, 3, 64, 64)).shape == (3, 10)


def test_tiny_other_sizes():
    with torch.no_grad():
        assert fcaformer.tiny(img_size=96).eval()(torch.randn(1, 3, 96, 96)).shape == (1, 10)
        assert cabvit.tiny(img_size=96).eval()(torch.randn(1, 3, 96, 96)).shape == (1, 10)
    with pytest.raises(ValueError):
        fcaformer.tiny(img_size=100)
