"""FcaFormer's ConvNeXt stages: the block's LayerNorm and MLP on (B, H*W, C) tokens, not on NHWC maps.

Problem removed: the train form runs LayerNorm and the two pointwise linears on a 4-D NHWC tensor
(`permute(0, 2, 3, 1)`). pnnx lowers a Linear on a 4-D input to Reshape -> Gemm -> Reshape, and with
ncnn's packed layout (its default, the ARM fast path) those reshapes repack a 3136 x 256 blob each time:
fcaformer_l1 took 182 ms in ncnn on x86 with packing and 45 ms without. On tokens the Linear is one Gemm.
ONNX Runtime sees a (1, C, HW) -> (1, HW, C) transpose instead of an NCHW -> NHWC permute: the same cost.
The block's resolution is static (FcaFormer's img_size fixes it), so no Shape ops enter traced graphs.
Same function; the layer scale is already folded into pwconv2 by `ConvNeXtBlock.fuse()`.
"""
from __future__ import annotations

import torch
from torch import nn

from edgevit.models.fcaformer import ConvNeXtBlock, FcaFormer
from edgevit.rewrite._registry import register_rewrite


class TokenConvNeXtBlock(nn.Module):
    """ConvNeXt block for one static resolution: depthwise 7x7 on NCHW, LayerNorm and MLP on tokens."""

    def __init__(self, src: ConvNeXtBlock, size: tuple[int, int]) -> None:
        super().__init__()
        self.dwconv, self.norm, self.pwconv1, self.act, self.pwconv2 = (
            src.dwconv, src.norm, src.pwconv1, src.act, src.pwconv2)
        self.gamma = src.gamma  # None once fused
        self.dim = src.dwconv.in_channels
        self.size = tuple(size)

    def extra_repr(self) -> str:
        return f"size={self.size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        y = self.dwconv(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.transpose(1, 2).reshape(-1, self.dim, h, w)


@register_rewrite(FcaFormer)
def token_convnext_blocks(model: nn.Module) -> nn.Module:
    """Every ConvNeXt block of the two conv stages (1/4 and 1/8 of img_size) -> `TokenConvNeXtBlock`."""
    assert isinstance(model, FcaFormer)
    h, w = model.img_size
    for stage, stride in zip(model.stages[:2], (4, 8)):
        for i, block in enumerate(stage.blocks):
            if isinstance(block, ConvNeXtBlock):
                stage.blocks[i] = TokenConvNeXtBlock(block, (h // stride, w // stride))
    return model
