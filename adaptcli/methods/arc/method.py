"""ARC (Adapter Re-Composing): a linear adapter after each LayerNorm with a shared projection.

``h' = h + dropout(h @ (U * s_l)) @ U^T + b_l``: U (D x r) is shared by all blocks of a group
(the whole ViT, or one Swin stage), s_l (r) and b_l (D) are per block. At inference the adapter is
``h' = h A + b`` with ``A = I + U diag(s_l) U^T``, which folds exactly into the Linear layers that
read h' (qkv on the attention side, fc1 on the MLP side).

``method.swin_placement=official`` follows ARC's released Swin code (``Model/ARC_swin_b.py``): there
the MLP-side adapter re-composes the residual stream itself before norm2,
``x = A(x); x = x + MLP(norm2(x))``, so the skip connection carries the adapted stream and the
adapter sits in front of a LayerNorm, not a Linear: not mergeable. It lives as the block's own child
``arc_stream`` (same parameters as the mergeable placement) and the block's class becomes a subclass
whose forward calls it. The attention side stays after norm1, because the released code puts it
there too (``x = A(norm1(x))`` before the windowed attention). On a backbone without Swin blocks the
option is refused: ARC's released ViT code already places both adapters as the default does.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from timm.models.swin_transformer import SwinTransformerBlock as TimmSwinBlock
from torch import nn
from torchvision.models.swin_transformer import SwinTransformerBlock as TorchvisionSwinBlock

from adaptcli.methods.arc.config import OFFICIAL_NOT_MERGEABLE, ArcOptions, arc_dropout
from adaptcli.methods.base import Method, fold_into_linear
from adaptcli.methods.pace import PaceSite
from adaptcli.errors import NotMergeableError, UnsupportedModelError
from adaptcli.models.blocks import (
    attention_inputs,
    block_groups,
    block_width,
    mlp_inputs,
    select_layers,
    transformer_blocks,
)

SHARED_NAME = "arc_projections"


class ArcProjection(nn.Module):
    """The shared down projection U (D x r); the up projection is its transpose."""

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, rank))
        nn.init.xavier_uniform_(self.weight)


class ArcRecompose(nn.Module):
    """``h -> h + dropout(h (U * s)) U^T + b`` over the last dimension."""

    def __init__(self, projection: ArcProjection, dropout: float, scale_init: str):
        super().__init__()
        dim, rank = projection.weight.shape
        # Not registered here: the projection is registered once on the model and shared.
        object.__setattr__(self, "projection", projection)
        self.scale = nn.Parameter(torch.zeros(rank))
        if scale_init == "xavier":  # xavier-uniform of a 1 x r matrix, as the released code draws it
            nn.init.xavier_uniform_(self.scale.data.view(1, rank))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        u = self.projection.weight
        flat = h.reshape(-1, h.shape[-1])
        z = self.dropout(flat @ (u * self.scale))
        # h' = h + z U^T + b with no stream-sized element-wise pass: b is one more row of the up
        # projection, read by a column of ones beside z, and the residual add happens inside addmm
        # (it accumulates into h). The norm gets no trainable term: CUDA's LayerNorm backward
        # returns an empty bias gradient when only the bias trains over more than 65,536 rows
        # (torch 2.8 to at least 2.14). As fast as folding b into the norm's shift on CPU
        # (docs/performance.md, ARC); equal to the formula up to float rounding.
        ones = torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)
        up = torch.cat([u.T, self.bias.unsqueeze(0)])
        return torch.addmm(flat, torch.cat([z, ones], dim=1), up).view(h.shape)

    @torch.no_grad()
    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, b)`` with ``h' = h A + b`` at inference."""
        u = self.projection.weight
        eye = torch.eye(u.shape[0], dtype=u.dtype, device=u.device)
        return eye + (u * self.scale) @ u.T, self.bias.detach().clone()


class ArcAdapter(ArcRecompose):
    """Wraps a norm layer (kept as ``base_layer``) and re-composes its output."""

    def __init__(self, base_layer: nn.Module, projection: ArcProjection, dropout: float, scale_init: str):
        super().__init__(projection, dropout, scale_init)
        self.base_layer = base_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.base_layer(x))


class ArcTimmSwinBlock(TimmSwinBlock):
    """timm's Swin block with ARC's released MLP side: ``x = arc_stream(x); x = x + MLP(norm2(x))``."""

    arc_stream: ArcRecompose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        x = self.arc_stream(x)
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class ArcTorchvisionSwinBlock(TorchvisionSwinBlock):
    """torchvision's Swin block (Video Swin) with ARC's released MLP side, as :class:`ArcTimmSwinBlock`."""

    arc_stream: ArcRecompose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.stochastic_depth(self.attn(self.norm1(x)))
        x = self.arc_stream(x)
        return x + self.stochastic_depth(self.mlp(self.norm2(x)))


#: Swin block classes (exactly these: V2 is post-norm) and their ARC-official subclass.
OFFICIAL_SWIN_BLOCKS: dict[type, type] = {
    TimmSwinBlock: ArcTimmSwinBlock, TorchvisionSwinBlock: ArcTorchvisionSwinBlock,
}


def side_scale_init(scale_init: str, side: str) -> str:
    """``official``: zero on the attention side, xavier-uniform on the MLP side (ARC's released code)."""
    if scale_init == "official":
        return "zero" if side == "att" else "xavier"
    return scale_init


class Arc(Method):
    sides: tuple[str, ...] = ("att", "mlp")

    def inject(self, model: nn.Module, options: ArcOptions) -> list[str]:
        blocks = transformer_blocks(model)
        official = options.swin_placement == "official"
        if official and not all(type(block) in OFFICIAL_SWIN_BLOCKS for _, block in blocks):
            raise UnsupportedModelError(
                f"method.swin_placement=official applies to Swin backbones only, not {type(model).__name__} "
                "(ARC's released ViT code places the adapters as the default mergeable does); drop the option")
        selected = set(select_layers(len(blocks), options.layers))
        dropout = arc_dropout(options)
        shared = nn.ModuleDict()
        added = []
        for group_index, group in enumerate(block_groups(model)):
            members = [i for i in group if i in selected]
            if not members:
                continue
            dim = block_width(blocks[members[0]][1])
            for side in self.sides:
                projection = ArcProjection(dim, options.dim)
                shared[f"g{group_index}_{side}"] = projection
                norm_attr = "norm1" if side == "att" else "norm2"
                for index in members:
                    name, block = blocks[index]
                    if official and side == "mlp":
                        block.__class__ = OFFICIAL_SWIN_BLOCKS[type(block)]
                        block.arc_stream = ArcRecompose(projection, dropout,
                                                        side_scale_init(options.scale_init, side))
                        added.append(f"{name}.arc_stream")
                        continue
                    adapter = ArcAdapter(getattr(block, norm_attr), projection, dropout,
                                         side_scale_init(options.scale_init, side))
                    setattr(block, norm_attr, adapter)
                    added.append(f"{name}.{norm_attr}")
        model.add_module(SHARED_NAME, shared)
        return [SHARED_NAME, *added]

    def pace_sites(self, model: nn.Module) -> list[PaceSite]:
        """``dropout(h (U * s)) U^T + b``: the re-composed output less the frozen ``h`` it re-composes."""
        sites = []
        for name, module in model.named_modules():
            if isinstance(module, ArcAdapter):
                sites.append(PaceSite(name, module, functools.partial(_base_output, module)))
            elif isinstance(module, ArcRecompose):
                sites.append(PaceSite(name, module, _first_input))
        return sites

    def is_mergeable(self, model: nn.Module) -> bool:
        """Not where a Linear reading an adapted norm has no bias for the adapter's shift (EVA-02's k_proj;
        with RoPE the shift of the keys does not cancel in the softmax), nor with the official Swin placement."""
        if any(type(module) is ArcRecompose for module in model.modules()):
            return False
        for _, block in transformer_blocks(model):
            for norm_attr, consumers in (("norm1", attention_inputs), ("norm2", mlp_inputs)):
                if isinstance(getattr(block, norm_attr), ArcAdapter) and any(
                        linear.bias is None for linear in consumers(block)):
                    return False
        return True

    def merge(self, model: nn.Module) -> None:
        if any(type(module) is ArcRecompose for module in model.modules()):  # official Swin placement
            raise NotMergeableError(OFFICIAL_NOT_MERGEABLE)
        for name, block in transformer_blocks(model):
            for norm_attr, consumers in (("norm1", attention_inputs), ("norm2", mlp_inputs)):
                adapter = getattr(block, norm_attr)
                if not isinstance(adapter, ArcAdapter):
                    continue
                linears = consumers(block)
                if not linears:
                    raise NotMergeableError(
                        f"cannot merge ARC in {name}: no Linear layer found reading {norm_attr}"
                    )
                matrix, shift = adapter.affine()
                for linear in linears:
                    fold_into_linear(linear, matrix, shift)
                setattr(block, norm_attr, adapter.base_layer)
        if hasattr(model, SHARED_NAME):
            delattr(model, SHARED_NAME)


class ArcAttention(Arc):
    """ARC on the attention side only (half the parameters)."""

    sides = ("att",)


def _base_output(adapter: ArcAdapter, args: tuple[Any, ...]) -> torch.Tensor:
    return adapter.base_layer(args[0])


def _first_input(args: tuple[Any, ...]) -> torch.Tensor:
    return args[0]
