"""Remove Dropout and drop-path: they are identities in eval mode, but a traced `bernoulli_` left
behind breaks Core ML conversion (FasterViT#91) and adds dead nodes to every graph."""
from __future__ import annotations

from torch import nn

from edgevit.models.layers import DropPath
from edgevit.rewrite._registry import register_rewrite


@register_rewrite(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, DropPath)
def remove_dropout(module: nn.Module) -> nn.Module:
    return nn.Identity()
