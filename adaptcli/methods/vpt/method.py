"""Visual prompt tuning: learnable tokens placed after the class (and register) tokens.

Shallow inserts ``p`` prompts before the first block; deep also replaces the prompt positions with a
fresh set before every later block. The prompts are removed from the sequence after the last block,
so the final norm, pooling and the head never see them (and timm's own position-embedding code,
which reads ``num_prefix_tokens``, is untouched). With register tokens (DINOv2-reg) the prompts
follow them: ``[CLS, registers, prompts, patches]``. Where attention rotates positions (EVA-02's
RoPE), the prompts are left unrotated, as the class token is.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from adaptcli.methods.vpt.config import VptDeepOptions, VptShallowOptions
from adaptcli.errors import UnsupportedModelError
from adaptcli.methods.base import Method
from adaptcli.models.blocks import block_width, transformer_blocks


def prompt_init_bound(patch_size: tuple[int, ...] | int, dim: int) -> float:
    """VPT's uniform bound ``sqrt(6 / (3 * patch * patch + D))`` (spatial patch size)."""
    if isinstance(patch_size, int):
        patch_size = (patch_size, patch_size)
    height, width = patch_size[-2:]
    return math.sqrt(6.0 / float(3 * height * width + dim))


class PromptTokens(nn.Module):
    """One set of prompts per layer that receives them (1 for shallow, depth for deep)."""

    def __init__(self, sets: int, tokens: int, dim: int, bound: float, dropout: float, start: int):
        super().__init__()
        self.embeddings = nn.Parameter(torch.empty(sets, tokens, dim).uniform_(-bound, bound))
        self.dropout = nn.Dropout(dropout)
        self.start = start  # index of the first prompt token in the sequence
        self.tokens = tokens

    def prompts(self, index: int, batch: int) -> torch.Tensor:
        return self.dropout(self.embeddings[index]).unsqueeze(0).expand(batch, -1, -1)

    def insert(self, x: torch.Tensor) -> torch.Tensor:
        prompts = self.prompts(0, x.shape[0]).to(x.dtype)
        return torch.cat([x[:, : self.start], prompts, x[:, self.start :]], dim=1)

    def replace(self, x: torch.Tensor, index: int) -> torch.Tensor:
        prompts = self.prompts(index, x.shape[0]).to(x.dtype)
        end = self.start + self.tokens
        return torch.cat([x[:, : self.start], prompts, x[:, end:]], dim=1)

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...], index: int) -> tuple[Any, ...]:
        """Forward pre-hook of block ``index``: insert (first block) or replace the prompts."""
        x = args[0]
        x = self.insert(x) if index == 0 else self.replace(x, index)
        return (x, *args[1:])

    def remove(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        """Forward hook of the last block: drop the prompt positions."""
        end = self.start + self.tokens
        return torch.cat([output[:, : self.start], output[:, end:]], dim=1)


class VptShallow(Method):
    deep = False

    def check_model(self, model: nn.Module) -> None:
        if not hasattr(model, "num_prefix_tokens") or "swin" in type(model).__name__.lower():
            raise UnsupportedModelError(
                f"{self.name} does not apply to {type(model).__name__}: prompts need one flat token "
                "sequence (Swin's shifted windows have none); use adaptformer or arc"
            )

    def inject(self, model: nn.Module, options: VptShallowOptions | VptDeepOptions) -> list[str]:
        self.check_model(model)
        blocks = transformer_blocks(model)
        dim = block_width(blocks[0][1])
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", 16)
        start = int(model.num_prefix_tokens)
        sets = len(blocks) if self.deep else 1
        prompts = PromptTokens(sets, options.tokens, dim, prompt_init_bound(patch, dim), options.dropout, start)
        model.vpt = prompts
        for _, block in blocks:
            # Attention that rotates positions (EVA-02's RoPE) leaves its first num_prefix_tokens tokens
            # unrotated: the prompts have no position, like the class token, so they join that prefix.
            if isinstance(getattr(block.attn, "num_prefix_tokens", None), int):
                block.attn.num_prefix_tokens += options.tokens
        for index in range(sets):
            # partial of a bound method: deep copies of the model keep pointing at their own prompts.
            blocks[index][1].register_forward_pre_hook(functools.partial(prompts.pre_hook, index=index))
        blocks[-1][1].register_forward_hook(prompts.remove)
        return ["vpt"]


class VptDeep(VptShallow):
    deep = True
