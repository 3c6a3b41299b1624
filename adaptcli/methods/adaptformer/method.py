"""AdaptFormer: a bottleneck AdaptMLP beside (or after) each selected block's MLP.

Parallel form: ``x = x' + MLP(LN2(x')) + s * up(dropout(relu(down(x'))))`` where ``x'`` is the
stream after the attention residual. The branch is attached with hooks on the block's own modules
(``norm2`` captures ``x'``, the branch is added after the MLP's drop-path), so any block with
norm1/attn/norm2/mlp works and key names of the backbone stay unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptcli.methods.adaptformer.config import AdaptFormerOptions
from adaptcli.methods.base import Method
from adaptcli.methods.pace import PaceSite
from adaptcli.models.blocks import block_width, select_layers, transformer_blocks


class AdaptMLP(nn.Module):
    """``s * up(dropout(relu(down(norm(x)))))``; ``up`` starts at zero so the branch starts at zero."""

    def __init__(self, dim: int, mid_dim: int, scale: float, dropout: float, layernorm: str, form: str):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if layernorm == "in" else nn.Identity()
        self.down = nn.Linear(dim, mid_dim)  # kaiming-uniform(a=sqrt(5)), nn.Linear's default
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(mid_dim, dim)
        self.scale = scale
        self.form = form
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self._stream: torch.Tensor | None = None

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(self.act(self.down(self.norm(x))))) * self.scale

    # Hooks: bound methods, so deep copies of the model stay consistent.
    def capture_stream(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._stream = args[0]

    def add_branch(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        # Drop the reference first in both forms: a captured stream that outlives the forward keeps
        # one B x N x D activation per block alive between steps (and through evaluation).
        stream, self._stream = self._stream, None
        if self.form == "sequential":
            return output + self.branch(output)
        return output + self.branch(stream.reshape(output.shape))

    def extra_repr(self) -> str:
        return f"scale={self.scale}, form={self.form}"


class AdaptFormer(Method):

    def inject(self, model: nn.Module, options: AdaptFormerOptions) -> list[str]:
        blocks = transformer_blocks(model)
        added = []
        for index in select_layers(len(blocks), options.layers):
            name, block = blocks[index]
            adapter = AdaptMLP(
                block_width(block), options.mid_dim, options.scale, options.dropout,
                options.layernorm, options.form,
            )
            block.adaptmlp = adapter
            # After the MLP's layer-scale and drop-path when the block has them (as in AdaptFormer's code).
            after = getattr(block, "drop_path2", None)
            if not isinstance(after, nn.Module):
                after = block.mlp
            block.norm2.register_forward_pre_hook(adapter.capture_stream)
            after.register_forward_hook(adapter.add_branch)
            added.append(f"{name}.adaptmlp")
        return added

    def pace_sites(self, model: nn.Module) -> list[PaceSite]:
        """The branch's ``up`` output (times the constant ``scale``, which the noise commutes with)."""
        return [PaceSite(f"{name}.up", module.up) for name, module in model.named_modules()
                if isinstance(module, AdaptMLP)]
