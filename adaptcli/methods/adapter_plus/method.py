"""Adapter+ (post position): ``x = x + s * DropPath(up(GELU(down(x))))`` on each block's output.

``s`` is a learned per-channel scale initialised to ones; ``down`` and ``up`` weights are
truncated-normal (std 0.01, cut at +-2 std), biases zero; no normalisation inside the adapter.
Attached with a forward hook on the block, so the backbone's key names stay unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import DropPath
from torch import nn

from adaptcli.methods.adapter_plus.config import AdapterPlusOptions
from adaptcli.methods.base import Method
from adaptcli.methods.pace import PaceSite
from adaptcli.models.blocks import block_width, select_layers, transformer_blocks


class AdapterPlusBranch(nn.Module):
    """``s * DropPath(up(GELU(down(x))))``, added to the block's output."""

    def __init__(self, dim: int, bottleneck: int, drop_path: float, init_std: float):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        self.scale = nn.Parameter(torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        for linear in (self.down, self.up):
            nn.init.trunc_normal_(linear.weight, std=init_std, a=-2 * init_std, b=2 * init_std)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.up(self.act(self.down(x))) * self.scale)

    def add_branch(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        return output + self(output)


class AdapterPlus(Method):

    def inject(self, model: nn.Module, options: AdapterPlusOptions) -> list[str]:
        blocks = transformer_blocks(model)
        added = []
        for index in select_layers(len(blocks), options.layers):
            name, block = blocks[index]
            branch = AdapterPlusBranch(block_width(block), options.bottleneck, options.drop_path, options.init_std)
            block.adapter_plus = branch
            block.register_forward_hook(branch.add_branch)  # a bound method: deep copies keep their own
            added.append(f"{name}.adapter_plus")
        return added

    def pace_sites(self, model: nn.Module) -> list[PaceSite]:
        """The branch added to each block's output (after its channel scale and drop-path)."""
        return [PaceSite(name, module) for name, module in model.named_modules()
                if isinstance(module, AdapterPlusBranch)]
