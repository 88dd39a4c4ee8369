"""STViT / SViT: official checkpoints load strictly and give the official logits; sizes, aliases, tiny()."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import edgevit
from edgevit.models import load_checkpoint, model_info
from edgevit.models._macs import count_params
from edgevit.models.stvit import STViT, tiny
from tests import conformance

NAMES = ["stvit_small", "stvit_base", "stvit_large"]


@pytest.fixture(scope="module", params=NAMES)
def loaded(request) -> tuple[str, STViT]:
    name = request.param
    model = edgevit.create_model(name, checkpoint=conformance.official_state_dict(name)).eval()
    return name, model


def test_fixtures_cover_the_family():
    assert set(NAMES) <= set(conformance.fixture_names())


@pytest.mark.parametrize("batch", [1, 2])
def test_official_checkpoint_conforms(loaded, batch):
    name, model = loaded
    with torch.inference_mode():
        logits = model(conformance.reference_input(name, batch))
    assert logits.shape == (batch, 1000) and logits.dtype == torch.float32
    conformance.assert_conforms(name, logits)


def test_params_match_manifest_and_published(loaded):
    name, model = loaded
    manifest = conformance.weights_module().load_manifest(name)
    n = count_params(model)
    assert n == manifest["trainable_params"]
    published = model_info(name).params_m
    assert published is not None and abs(n / 1e6 - published) <= 0.01 * published, (n, published)


def test_identity_kernels_accepted_and_ignored():
    """The official `attn.unfold.weights` / `attn.fold.weights` are accepted whatever their values."""
    sd = conformance.official_state_dict("stvit_small")
    identity = [k for k in sd if k.endswith((".attn.unfold.weights", ".attn.fold.weights"))]
    assert len(identity) == 2 * 20
    model = edgevit.create_model("stvit_small")
    kept = model.checkpoint_filter(dict(sd))
    assert not any(k.endswith(".weights") for k in kept)
    reference = {k: v.clone() for k, v in load_checkpoint(model, sd).state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    scrambled = {k: (torch.randn_like(v) if k in identity else v) for k, v in sd.items()}
    wrapped = {"model": {f"module.{k}": v for k, v in scrambled.items()}}
    loaded_sd = load_checkpoint(model, wrapped).state_dict()
    assert loaded_sd.keys() == reference.keys()
    assert all(torch.equal(loaded_sd[k], reference[k]) for k in reference)


def test_official_key_mapping_is_readable():
    model = edgevit.create_model("stvit_base")
    keys = set(model.state_dict())
    for key in ["stem.conv1.weight", "stem.norm4.running_var", "stages.1.downsample.conv.weight",
                "stages.0.blocks.0.norm1.weight", "stages.0.blocks.0.attn.refine.qkv.weight",
                "stages.0.blocks.0.mlp.dwconv.conv.weight", "stages.2.blocks.0.gamma1", "proj_norm.weight"]:
        assert key in keys, key
    assert "stages.0.downsample.conv.weight" not in keys  # the first stage keeps the stem's resolution


@pytest.mark.parametrize("alias,name", [("svit_s", "stvit_small"), ("svit_b", "stvit_base"), ("svit_l", "stvit_large")])
def test_aliases_resolve(alias, name):
    info = model_info(alias)
    assert info.name == name and info.family == "stvit" and info.top1 is not None and info.gmacs is not None


def test_tiny_trains_a_step():
    torch.manual_seed(0)
    model = tiny(num_classes=10, img_size=64).train()
    assert any(m.samples_super_tokens for m in model.modules() if hasattr(m, "samples_super_tokens"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()) if p.requires_grad)


@pytest.mark.parametrize("size", [32, 96])
def test_tiny_runs_at_sizes_divisible_by_32(size):
    model = tiny(img_size=size).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 10)
