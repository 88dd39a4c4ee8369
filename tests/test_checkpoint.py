"""The checkpoint loader: wrappers, prefixes, strict matching and the errors users see."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgevit.errors import CheckpointError
from edgevit.models import load_checkpoint, unwrap_state_dict


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 2)


def _sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return _Net().state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"model": sd, "epoch": 3},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {"model_ema": sd, "model": {k: torch.zeros_like(v) for k, v in sd.items()}},
        lambda sd: {"checkpoint": 1, "state_dict": {"model": sd}},
    ],
    ids=["plain", "model", "state_dict+module", "ema-preferred", "nested"],
)
def test_wrapped_checkpoints_load_exactly(tmp_path, wrap):
    sd = _sd()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(sd), path)
    net = load_checkpoint(_Net(), path)
    for k, v in net.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_mismatch_lists_missing_unexpected_and_shapes():
    sd = _sd()
    sd.pop("head.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["stem.weight"] = torch.zeros(5, 3, 3, 3)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(_Net(), sd)
    msg = str(err.value)
    assert "missing keys: head.bias" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "stem.weight (5, 3, 3, 3) vs (4, 3, 3, 3)" in msg
    assert "\n" not in msg


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(_Net(), tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(_Net(), bad)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_checkpoint(_Net(), tmp_path / "list.pth")


def test_unwrap_rejects_tensorless():
    with pytest.raises(CheckpointError, match="no tensors"):
        unwrap_state_dict({"epoch": 1, "args": {"lr": 0.1}})
