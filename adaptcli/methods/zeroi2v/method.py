"""ZeroI2V: an image ViT adapted to video with a temporal head shift and linear adapters that merge.

The block, as ``ResidualAttentionBlock_ZeroI2V.forward`` in MCG-NJU/ZeroI2V
``mmaction/models/backbones/vit_zero_clip.py`` (``num_tadapter=2``)::

    x = x + S(attn(T_in(ln_1(x))))          # attn shifts key/value heads over frames (STDHA)
    x = x + M_out(mlp(M_in(ln_2(x))))

with each adapter ``a(h) = h + s * fc2(dropout(fc1(h)))`` (``LinearAdapter``, fc1 ``D -> D * mlp_ratio``,
fc2 zero-initialised, so training starts from the image model). Being affine, ``T_in`` folds into the
``qkv`` projection after it, ``S`` into the attention's output projection before it, ``M_in`` into
``mlp.fc1`` and ``M_out`` into ``mlp.fc2``: the merged model is the image ViT with the shift (built by
:func:`adaptcli.models.frame_shift.attach_frame_shift`), no extra parameter or FLOP. Each adapter is
attached to its linear (:class:`AdaptedLinear`, the linear kept as ``base_layer``); where a block has
LayerScale (DINOv2, DeiT-III) it scales the adapted branch, as it scales the linear it sits on.

The official learned ``temporal_embedding`` (a ``T x D`` table added to every token of each frame before
``ln_pre``) is the option ``temporal_embedding`` (off by default): with it the merged model keeps the table,
so it is the image ViT + the shift + the table (:func:`adaptcli.models.frame_shift.add_temporal_embedding`).
"""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.errors import NotMergeableError, UnsupportedModelError
from adaptcli.methods.base import Method, fold_into_linear
from adaptcli.methods.pace import PaceSite
from adaptcli.methods.zeroi2v.config import ZeroI2VOptions
from adaptcli.models.blocks import select_layers, set_submodule, transformer_blocks
from adaptcli.models.frame_shift import ShiftedQkv, attach_frame_shift, shift_group

#: Adapter sites: (linear in the block, whether the adapter comes before it); official names in comments.
SITES = (("attn.qkv", True),   # T_Adapter_in
         ("attn.proj", False),  # S_Adapter
         ("mlp.fc1", True),    # MLP_Adapter
         ("mlp.fc2", False))   # MLP_Adapter_out


class LinearAdapter(nn.Module):
    """``h + s * fc2(dropout(fc1(h)))``: affine in ``h``, fc2 zero at the start."""

    def __init__(self, dim: int, mlp_ratio: float, scale: float, dropout: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.scale = scale
        nn.init.trunc_normal_(self.fc1.weight, std=0.02)  # the official init_weights' _init_weights
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.dropout(self.fc1(x))) * self.scale

    @torch.no_grad()
    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, c)`` with ``adapter(h) = h @ A.T + c`` (dropout off)."""
        eye = torch.eye(self.fc2.out_features, dtype=self.fc2.weight.dtype, device=self.fc2.weight.device)
        matrix = eye + self.scale * self.fc2.weight @ self.fc1.weight
        shift = self.scale * (self.fc2.weight @ self.fc1.bias + self.fc2.bias)
        return matrix, shift

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class AdaptedLinear(nn.Module):
    """A block's linear with a :class:`LinearAdapter` before (``adapter_in``) or after (``adapter_out``) it."""

    def __init__(self, base_layer: nn.Module, adapter: LinearAdapter, before: bool):
        super().__init__()
        self.base_layer = base_layer
        self.before = before
        if before:
            self.adapter_in = adapter
        else:
            self.adapter_out = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.before:
            return self.base_layer(self.adapter_in(x))
        return self.adapter_out(self.base_layer(x))

    @torch.no_grad()
    def folded(self) -> nn.Module:
        """The base layer with the adapter folded into its weight and bias."""
        layer = self.base_layer
        if self.before:
            matrix, shift = self.adapter_in.affine()
            fold_into_linear(layer, matrix.T, shift)  # layer(h @ A.T + c)
            return layer
        matrix, shift = self.adapter_out.affine()  # A (W h + b) + c
        if layer.bias is None:
            if torch.count_nonzero(shift):
                raise NotMergeableError(
                    "cannot merge ZeroI2V: the layer before an output adapter has no bias to take the adapter's "
                    "bias; export with --full or --adapter-only instead")
        else:
            layer.bias.copy_(matrix.to(layer.bias) @ layer.bias + shift.to(layer.bias))
        layer.weight.copy_(matrix.to(layer.weight) @ layer.weight)
        return layer


class ZeroI2V(Method):
    def check_model(self, model: nn.Module) -> None:
        blocks = transformer_blocks(model)
        proj = getattr(getattr(model, "patch_embed", None), "proj", None)
        if isinstance(proj, nn.Conv3d):
            raise UnsupportedModelError(
                "zeroi2v adapts an image ViT to video (frames through the image model); this is already a video "
                "model; use an image backbone such as --model vit_base_patch16_clip_224.openai")
        for name, block in blocks:
            if getattr(block.attn, "q_bias", None) is not None or \
                    not isinstance(getattr(block.attn, "qkv", None), (nn.Linear, ShiftedQkv)):
                raise UnsupportedModelError(
                    f"zeroi2v needs attention that runs its fused qkv linear as a module ({name}.attn is "
                    f"{type(block.attn).__name__}: separate q/k/v or biases added outside qkv, as in EVA-02); use a "
                    "timm ViT (CLIP, DINOv2, SigLIP, DeiT-III)")
            for site, _ in SITES:
                layer = _site(block, site)
                if not isinstance(layer, (nn.Linear, ShiftedQkv)):
                    raise UnsupportedModelError(
                        f"zeroi2v needs linear {site} layers in every block ({name}.{site} is "
                        f"{type(layer).__name__}); use a timm ViT (CLIP, DINOv2, SigLIP, DeiT-III)")

    def inject(self, model: nn.Module, options: ZeroI2VOptions) -> list[str]:
        shift_group(model, options.shift_div, options.offsets)
        frames = None
        if options.temporal_embedding:
            if self.num_frames is None:
                raise ValueError("method.temporal_embedding needs the run's frames per clip: "
                                 "apply_method(..., num_frames=config.model.num_frames)")
            frames = self.num_frames
        attach_frame_shift(model, options.shift_div, options.offsets, temporal_embedding=frames)
        blocks = transformer_blocks(model)
        added = ["temporal_embedding"] if frames is not None else []
        for index in select_layers(len(blocks), options.layers):
            name, block = blocks[index]
            for site, before in SITES:
                layer = _site(block, site)
                width = layer.in_features if before else layer.out_features
                adapter = LinearAdapter(width, options.mlp_ratio, options.scale, options.dropout)
                adapter.to(device=layer.weight.device, dtype=layer.weight.dtype)
                set_submodule(model, f"{name}.{site}", AdaptedLinear(layer, adapter, before))
                added.append(f"{name}.{site}.adapter_{'in' if before else 'out'}")
        return added

    def pace_sites(self, model: nn.Module) -> list[PaceSite]:
        """Each adapter's branch: its ``fc2`` output (times the constant ``scale``, which the noise commutes with)."""
        return [PaceSite(f"{name}.fc2", module.fc2) for name, module in model.named_modules()
                if isinstance(module, LinearAdapter)]

    def merge(self, model: nn.Module) -> None:
        for name, module in list(model.named_modules()):
            if isinstance(module, AdaptedLinear):
                set_submodule(model, name, module.folded())


def _site(block: nn.Module, site: str) -> nn.Module | None:
    try:
        return block.get_submodule(site)
    except AttributeError:
        return None
