"""Count multiply-accumulates with torch's own FLOP counter (matmuls, convolutions, attention).

Elementwise ops, norms and activations are not counted, the convention of the papers' tables
(fvcore / thop), so our figures are comparable with the published GMACs.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def count_macs(model: nn.Module, img_size: int = 224, batch: int = 1) -> int:
    """MACs of one forward pass at `img_size` (per batch of `batch`), in eval mode."""
    was_training = model.training
    model.eval()
    x = torch.zeros(batch, 3, img_size, img_size)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def count_params(model: nn.Module) -> int:
    """Trainable parameters (what papers report)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
