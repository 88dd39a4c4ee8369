"""Static forward cross attention for FcaFormer / CabViT (`CrossAttention` -> `StaticCrossAttention`).

Problems removed (all seen in the naive export of the official code):
- the relative position bias is gathered from its table on every call (`attention_biases[:, idxs]`:
  a Gather on a constant index buffer, evaluated at runtime by runtimes that do not fold it, and it
  locks the model to its build resolution, EfficientFormer#20 / LeViT#25);
- attention over own tokens and over cross tokens runs as two MatMul+Add branches joined by a
  Concat of logits and a Concat of values, a pattern no runtime fuses into one attention
  (ORT / TensorRT / Core ML attention fusions want one QK^T -> (+bias) -> Softmax -> V chain);
- cross tokens go through the full qkv projection although their queries are thrown away;
- `qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4)` is a rank-5 reshape that pnnx/ncnn reject;
- the query scale is a separate Mul per block.

The deploy form computes queries from own tokens only (scale folded into the weights), keys and
values of [own tokens; scaled and normalised cross tokens] with one projection, split by `chunk`
(rank 4 only), and runs ONE attention with ONE precomputed additive bias (relative position bias of
own tokens concatenated with the per-head cross-token bias). Same function; the bias constant fixes
the token count, so the model runs at its build resolution only (`build_tokens` records it, the
model's `img_size` gives the resolution). The constant costs h*N*(N+Ns) floats per block (up to
1.3 MB per block, 6.9 MB in all, for fcaformer_l1).

The attention is written as MatMul-Add-Softmax-MatMul rather than `F.scaled_dot_product_attention`:
at opset 18-20 (edgevit's ONNX default is 20) SDPA decomposes into the same chain plus extra Reshape/Mul
nodes (16 more nodes on fcaformer_l1); at opset 23 it becomes one `Attention` node that ORT runs
but that the TensorRT / Core ML / ncnn converters do not all accept, while all of them
pattern-match the plain chain. Weight layer scales and BatchNorm are folded by the models' own
`fuse()` methods; cross tokens already reach each block as one tensor of static size (`FcaStage`).
"""
from __future__ import annotations

import torch
from torch import nn

from edgevit.models.fcaformer import CrossAttention
from edgevit.rewrite._registry import register_rewrite


class StaticCrossAttention(nn.Module):
    """One attention over own tokens plus cross tokens, with constant bias; rank-4 shapes only.

    Without cross tokens one `qkv` projection is split by `chunk`; with them, queries come from own
    tokens (`q_proj`) and keys/values from [own; cross] tokens (`kv_proj`). Query scale is folded in.
    """

    def __init__(self, num_heads: int, head_dim: int, qkv: nn.Linear | None, q_proj: nn.Linear | None,
                 kv_proj: nn.Linear | None, proj: nn.Linear, bias: torch.Tensor | None,
                 cross_norm: nn.LayerNorm | None, cross_scale: torch.Tensor | None,
                 build_tokens: int | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.build_tokens = build_tokens  # own tokens per image (static), None: read from the input
        self.qkv = qkv
        self.q_proj = q_proj
        self.kv_proj = kv_proj
        self.proj = proj
        self.cross_norm = cross_norm
        self.register_buffer("bias", bias)
        self.register_buffer("cross_scale", cross_scale)

    def forward(self, x: torch.Tensor, cross: torch.Tensor | None = None) -> torch.Tensor:
        h, d = self.num_heads, self.head_dim
        n = self.build_tokens if self.build_tokens is not None else x.shape[1]
        if self.qkv is not None:
            q, k, v = self.qkv(x).reshape(-1, n, 3 * h, d).transpose(1, 2).chunk(3, dim=1)
        else:
            assert self.q_proj is not None and self.kv_proj is not None
            assert cross is not None and self.cross_norm is not None and self.cross_scale is not None
            t = n + self.cross_scale.shape[1]
            q = self.q_proj(x).reshape(-1, n, h, d).transpose(1, 2)
            x = torch.cat([x, self.cross_norm(cross * self.cross_scale)], dim=1)
            k, v = self.kv_proj(x).reshape(-1, t, 2 * h, d).transpose(1, 2).chunk(2, dim=1)
        attn = q @ k.transpose(-2, -1)  # plain MatMul-Add-Softmax-MatMul: see the module docstring
        if self.bias is not None:
            attn = attn + self.bias
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, n, h * d)
        return self.proj(out)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight.to(dtype))
        if bias is not None:
            lin.bias.copy_(bias.to(dtype))
    return lin


@register_rewrite(CrossAttention)
@torch.no_grad()
def static_cross_attention(module: nn.Module) -> nn.Module:
    assert isinstance(module, CrossAttention)
    c = module.qkv.in_features
    h, d = module.num_heads, module.head_dim
    dtype = module.qkv.weight.dtype
    w = module.qkv.weight.double()
    b = module.qkv.bias.double() if module.qkv.bias is not None else None
    w[:c] *= module.scale  # fold the query scale into the projection
    if b is not None:
        b[:c] *= module.scale
    if module.num_cross > 0:  # queries of own tokens only; keys/values of own and cross tokens
        qkv = None
        q_proj = _linear(w[:c], None if b is None else b[:c], dtype)
        kv_proj = _linear(w[c:], None if b is None else b[c:], dtype)
    else:
        qkv, q_proj, kv_proj = _linear(w, b, dtype), None, None

    bias: torch.Tensor | None = None  # (h, N or 1, N [+ Ns])
    build_tokens = module.num_tokens
    if module.attention_biases is not None:
        bias = module.attention_biases[:, module.attention_bias_idxs].detach()
        build_tokens = bias.shape[-1]
    cross_norm = cross_scale = None
    if module.num_cross > 0:
        cross = module.cross_bias.detach()[0]  # (h, 1, Ns), the same for every query
        if bias is None:  # no position bias: own tokens' logits get 0
            assert module.num_tokens is not None, "cross tokens without position bias need num_tokens"
            bias = cross.new_zeros(h, 1, module.num_tokens)
        bias = torch.cat([bias, cross.expand(h, bias.shape[1], -1)], dim=-1)
        cross_norm = module.cross_norm
        cross_scale = module.cross_scale.detach().clone()
    if bias is not None:
        bias = bias.unsqueeze(0).contiguous().to(dtype)
    out = StaticCrossAttention(h, d, qkv, q_proj, kv_proj, module.proj, bias, cross_norm, cross_scale,
                               build_tokens)
    return out.train(module.training)
