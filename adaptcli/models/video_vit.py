"""A video ViT in the VideoMAE layout, built from timm parts and registered with timm.

Input ``B x 3 x T x H x W``. A Conv3d tubelet embedding (``tubelet_size x patch x patch``, stride
equal to the kernel) turns the clip into ``T/t * H/p * W/p`` tokens, ordered time-major
(``t, h, w``). A fixed sinusoid table (VideoMAE's, 1-D over that flat index) is added; it is a
non-persistent buffer, recomputed for whatever T/H/W the model sees, so it never appears in a
state dict. Joint space-time attention (timm ``Block``), no class token, then the mean of the tokens
(skipping ``num_prefix_tokens`` leading ones, which VPT raises), ``fc_norm`` and the head.

Registered names: ``video_vit_small_patch16``, ``video_vit_base_patch16``,
``video_vit_large_patch16`` and the tiny ``video_vit_test``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import Block

__all__ = ["VideoVisionTransformer", "TubeletEmbed", "sinusoid_table"]


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's fixed table, ``1 x N x D``: sin on even channels, cos on odd ones."""
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    channel = torch.arange(dim, dtype=torch.float64)
    angle = position / torch.pow(10000.0, 2 * torch.div(channel, 2, rounding_mode="floor") / dim)
    table = torch.empty(num_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.to(torch.float32).unsqueeze(0)


class TubeletEmbed(nn.Module):
    """Conv3d over non-overlapping ``tubelet x patch x patch`` cubes, flattened time-major."""

    def __init__(self, img_size: int, patch_size: int, num_frames: int, tubelet_size: int,
                 in_chans: int, embed_dim: int):
        super().__init__()
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"img_size {img_size} must be a multiple of patch_size {patch_size} and num_frames "
                f"{num_frames} a multiple of tubelet_size {tubelet_size}"
            )
        self.patch_size = (patch_size, patch_size)
        self.tubelet_size = tubelet_size
        self.grid_size = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"video_vit expects B x C x T x H x W, got shape {tuple(x.shape)}")
        # contiguous(): the transposed view has strides (N*D, 1, N), and element-wise ops keep the
        # layout of their first input, so without this copy the whole residual stream stays
        # "channels first" and every LayerNorm (and AdaptFormer's down projection) makes its own
        # contiguous copy, in the forward and again in the backward (and AdaptFormer saves that copy
        # for its weight gradient: one extra B x N x D activation per block). One copy here instead.
        return self.proj(x).flatten(2).transpose(1, 2).contiguous()


class VideoVisionTransformer(nn.Module):
    """VideoMAE-style ViT: tubelet embedding, fixed sinusoid positions, mean pooling, ``fc_norm``."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        num_frames: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[..., nn.Module] | None = None,
    ):
        super().__init__()
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '' (no class token), got {global_pool!r}")
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_frames = num_frames
        self.num_prefix_tokens = 0  # no class token; VPT raises this to skip its prompts
        self.has_class_token = False
        self.grad_checkpointing = False

        self.patch_embed = TubeletEmbed(img_size, patch_size, num_frames, tubelet_size, in_chans, embed_dim)
        self.register_buffer("pos_embed", sinusoid_table(self.patch_embed.num_patches, embed_dim), persistent=False)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]  # (meta-device safe)
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_drop=drop_rate,
                  attn_drop=attn_drop_rate, drop_path=rates[i], norm_layer=norm_layer)
            for i in range(depth)
        ])
        self.norm = nn.Identity()  # VideoMAE with mean pooling: the final norm is fc_norm
        self.fc_norm = norm_layer(embed_dim)
        self.fc_norm_group = "head"  # fc_norm's layer-decay group (group_matcher)
        self.attn_pool: nn.Module | None = None  # an attention pooler in place of the mean (attentive probe)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    # ----------------------------------------------------------------- timm model interface

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return set()  # the position table is a fixed buffer, there is no class token

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's layer grouping (layer-wise lr decay): the embedding, then each block; ``fc_norm`` is left to
        the head's group (1.0x the lr), as VideoMAE's optim_factory.py ``get_num_layer_for_vit`` does.
        ``fc_norm_group = "last_block"``: the grouping before that (fc_norm in the last block's layer), which
        runs trained with it resume with (:func:`adaptcli.engine.optim.match_saved_groups`)."""
        blocks = [(r"^blocks\.(\d+)", None)]
        if self.fc_norm_group == "last_block":
            blocks.append((r"^fc_norm", (99999,)))
        return dict(stem=r"^patch_embed", blocks=blocks)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def key_bias_parts(self) -> dict[str, slice]:
        """The key third of each fused ``qkv.bias``: VideoMAE's layout has only ``q_bias`` and ``v_bias``,
        so these stay zero (a key bias cannot change attention: softmax ignores a per-query constant)."""
        return {f"blocks.{i}.attn.qkv.bias": slice(self.embed_dim, 2 * self.embed_dim)
                for i, block in enumerate(self.blocks) if getattr(block.attn.qkv, "bias", None) is not None}

    def position_table(self, num_tokens: int, like: torch.Tensor) -> torch.Tensor:
        """The fixed table for ``num_tokens`` tokens (the cached one when the size matches)."""
        table = self.pos_embed
        if table.shape[1] != num_tokens:
            table = sinusoid_table(num_tokens, self.embed_dim)
        return table.to(device=like.device, dtype=like.dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clip ``B x C x T x H x W`` to tokens ``B x N x D`` (N grows by any VPT prompts)."""
        x = self.patch_embed(x)
        x = self.pos_drop(x + self.position_table(x.shape[1], x))
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for block in self.blocks:
                x = checkpoint(block, x, use_reentrant=False)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.attn_pool is not None:
            x = self.attn_pool(x)  # every token, as timm's EVA passes them
        elif self.global_pool == "avg":
            x = x[:, self.num_prefix_tokens:].mean(dim=1)
        x = self.fc_norm(x)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------- registration


def local_weights_cfg(**kwargs: Any) -> dict[str, Any]:
    """No hub weights: these models load local checkpoints (``--checkpoint FILE``)."""
    return {
        "url": "",
        "num_classes": 400,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "video_vit_small_patch16": local_weights_cfg(),
    "video_vit_base_patch16": local_weights_cfg(),
    "video_vit_large_patch16": local_weights_cfg(),
    "video_vit_test": local_weights_cfg(input_size=(3, 32, 32)),
})


def _create(variant: str, pretrained: bool, **kwargs: Any) -> VideoVisionTransformer:
    return build_model_with_cfg(VideoVisionTransformer, variant, pretrained, **kwargs)


@register_model
def video_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> VideoVisionTransformer:
    """ViT-S/16 video (D=384, depth 12, 6 heads), tubelet 2."""
    args = dict(patch_size=16, embed_dim=384, depth=12, num_heads=6)
    return _create("video_vit_small_patch16", pretrained, **{**args, **kwargs})


@register_model
def video_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> VideoVisionTransformer:
    """ViT-B/16 video (D=768, depth 12, 12 heads), tubelet 2: VideoMAE's SSv2 / HMDB51 backbone."""
    args = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12)
    return _create("video_vit_base_patch16", pretrained, **{**args, **kwargs})


@register_model
def video_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> VideoVisionTransformer:
    """ViT-L/16 video (D=1024, depth 24, 16 heads), tubelet 2."""
    args = dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16)
    return _create("video_vit_large_patch16", pretrained, **{**args, **kwargs})


@register_model
def video_vit_test(pretrained: bool = False, **kwargs: Any) -> VideoVisionTransformer:
    """Tiny model for tests (D=64, depth 2, 2 heads, 32 px, 4 frames)."""
    args = dict(img_size=32, patch_size=16, num_frames=4, embed_dim=64, depth=2, num_heads=2)
    return _create("video_vit_test", pretrained, **{**args, **kwargs})
