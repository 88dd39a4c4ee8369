"""Official-checkpoint FcaFormer/CabViT models, built once per test session (both test files use them).

Building L3/L4 is dominated by weight init and fixture generation; the cached models are never
modified (`deploy` copies), which the rewrite tests check.
"""
from __future__ import annotations

from functools import cache

from torch import nn

import edgevit
from tests.conformance import official_state_dict

FIXTURES = ["fcaformer_l1", "fcaformer_l2", "fcaformer_l3", "fcaformer_l4",
            "cabvit_h_l1", "cabvit_h_l2", "cabvit_h_l3", "cabvit_p_l0"]


@cache
def official_model(name: str) -> nn.Module:
    """edgevit's `name` with the fixture's official state dict loaded strictly, in eval mode.

    `init_weights=False` skips the random init the checkpoint overwrites anyway (most of the build
    time of L3/L4); the default path is covered by the wrapped-checkpoint test and the zoo tests.
    """
    return edgevit.create_model(name, checkpoint=official_state_dict(name), init_weights=False).eval()
