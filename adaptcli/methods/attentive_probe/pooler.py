"""V-JEPA's attentive pooler (src/models/attentive_pooler.py and src/models/utils/modules.py of
facebookresearch/vjepa2): learned query token(s) read the tokens through one cross-attention block,
after ``depth - 1`` self-attention blocks over the tokens.

Module and parameter names follow the official ones (``query_tokens``, ``blocks``,
``cross_attention_block.{norm1,xattn.q,xattn.kv,norm2,mlp}``), so an official ``pooler.*`` state
dict loads as it is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import Mlp, trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn


class CrossAttention(nn.Module):
    """Multi-head attention of queries over tokens; no output projection (as the official one)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        batch, count, dim = queries.shape
        heads = self.num_heads
        q = self.q(queries).reshape(batch, count, heads, dim // heads).transpose(1, 2)
        k, v = self.kv(tokens).reshape(batch, tokens.shape[1], 2, heads, dim // heads).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, count, dim)


class CrossAttentionBlock(nn.Module):
    """``q + xattn(q, norm1(x))``, then ``q + mlp(norm2(q))``: only the tokens are normed before attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.xattn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        queries = queries + self.xattn(queries, self.norm1(tokens))
        return queries + self.mlp(self.norm2(queries))


class AttentivePooler(nn.Module):
    """Tokens ``B x N x D`` to one pooled feature ``B x D`` (the official AttentiveClassifier's one query).

    The first ``prefix_tokens`` (class and register tokens) are dropped: V-JEPA's encoders have none.
    """

    def __init__(self, dim: int, num_heads: int, depth: int, mlp_ratio: float, prefix_tokens: int = 0,
                 init_std: float = 0.02):
        super().__init__()
        self.prefix_tokens = prefix_tokens
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.cross_attention_block = CrossAttentionBlock(dim, num_heads, mlp_ratio)
        # timm's Block is the official Block without RoPE: norm1, attn.{qkv,proj}, norm2, mlp.{fc1,fc2}
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=nn.LayerNorm)
                                     for _ in range(depth - 1)]) if depth > 1 else None
        self.init_std = init_std
        trunc_normal_(self.query_tokens, std=init_std)
        self.apply(self._init_weights)
        self._rescale_blocks()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=self.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @torch.no_grad()
    def _rescale_blocks(self) -> None:
        """Output layers divided by sqrt(2 * layer); the cross block reuses the last self-attention
        block's layer number (1 when there is none), as the official ``_rescale_blocks`` does."""
        layer = 0
        for layer, block in enumerate(self.blocks or []):
            block.attn.proj.weight.div_(math.sqrt(2.0 * (layer + 1)))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * (layer + 1)))
        self.cross_attention_block.mlp.fc2.weight.div_(math.sqrt(2.0 * (layer + 1)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens[:, self.prefix_tokens:]
        for block in self.blocks or []:
            tokens = block(tokens)
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)  # a traced size: ONNX keeps the batch axis dynamic
        return self.cross_attention_block(queries, tokens).squeeze(1)
