"""Video Swin (``swin3d_t`` / ``swin3d_s`` / ``swin3d_b``): torchvision's architecture, registered with timm.

:class:`VideoSwin` *subclasses* torchvision's ``SwinTransformer3d`` instead of wrapping it, so its
modules and state-dict keys are torchvision's own (``patch_embed.*``, ``features.<i>.<j>.*``,
``norm.*``, ``head.*``): a merged export is a plain torchvision state dict that
``torchvision.models.video.swin3d_t().load_state_dict(state, strict=True)`` takes. The subclass
only adds timm's model interface (``pretrained_cfg``, ``get_classifier``, ``reset_classifier``,
``set_grad_checkpointing``) so that ``timm.create_model("swin3d_t")`` works like any other name, and
computes window attention with PyTorch's fused kernel (:mod:`adaptcli.models.window_attention`).

Input ``B x 3 x T x H x W``. Any T/H/W works: torchvision pads to the 8 x 7 x 7 window and shrinks
the window where the feature map is smaller, so tests run at 4 frames of 32 px.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torchvision.models.swin_transformer import SwinTransformerBlock
from torchvision.models.video.swin_transformer import SwinTransformer3d

from adaptcli.models.window_attention import FusedShiftedWindowAttention3d

__all__ = ["VideoSwin", "ARCHITECTURES"]

#: torchvision's ``swin3d_*`` builders' arguments (torchvision/models/video/swin_transformer.py).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "swin3d_t": dict(patch_size=[2, 4, 4], embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                     window_size=[8, 7, 7]),
    "swin3d_s": dict(patch_size=[2, 4, 4], embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24],
                     window_size=[8, 7, 7]),
    "swin3d_b": dict(patch_size=[2, 4, 4], embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                     window_size=[8, 7, 7]),
}


class VideoSwin(SwinTransformer3d):
    """torchvision's ``SwinTransformer3d`` with timm's model interface; same modules, same keys."""

    def __init__(self, *, num_classes: int = 400, drop_path_rate: float = 0.0, drop_rate: float = 0.0,
                 img_size: int | None = None, num_frames: int | None = None, in_chans: int = 3, **arch: Any):
        if in_chans != 3:
            raise ValueError(f"swin3d takes 3-channel clips, got in_chans={in_chans}")
        super().__init__(num_classes=max(num_classes, 1), stochastic_depth_prob=drop_path_rate,
                         dropout=drop_rate, block=_fused_block, **arch)
        # img_size / num_frames shape the data stream only: the windows adapt to any input size.
        self.window_size = list(arch["window_size"])
        self.embed_dim = arch["embed_dim"]
        self.head_hidden_size = self.num_features
        self.grad_checkpointing = False
        self.reset_classifier(num_classes)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return set()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clip ``B x C x T x H x W`` to the final feature map ``B x T' x H' x W' x D`` (normed)."""
        if x.ndim != 5:
            raise ValueError(f"swin3d expects B x C x T x H x W, got shape {tuple(x.shape)}")
        x = self.pos_drop(self.patch_embed(x))
        if self.grad_checkpointing and torch.is_grad_enabled():
            for stage in self.features:
                x = checkpoint(stage, x, use_reentrant=False)
        else:
            x = self.features(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x.permute(0, 4, 1, 2, 3)), 1)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _fused_block(*args: Any, attn_layer: Any = None, **kwargs: Any) -> SwinTransformerBlock:
    """torchvision's block with the attention on ``F.scaled_dot_product_attention`` (torchvision passes
    its own ``attn_layer``; this one replaces it)."""
    return SwinTransformerBlock(*args, attn_layer=FusedShiftedWindowAttention3d, **kwargs)


def _cfg() -> dict[str, Any]:
    """Local weights only (``--checkpoint FILE``): the official release or torchvision's files."""
    return {
        "url": "",
        "num_classes": 400,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "fixed_input_size": False,
        # Video Swin and torchvision's Swin3D weights were trained on ImageNet-normalised frames.
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
    }


default_cfgs = generate_default_cfgs({name: _cfg() for name in ARCHITECTURES})


def _create(variant: str, pretrained: bool, **kwargs: Any) -> VideoSwin:
    return build_model_with_cfg(VideoSwin, variant, pretrained, **{**ARCHITECTURES[variant], **kwargs})


@register_model
def swin3d_t(pretrained: bool = False, **kwargs: Any) -> VideoSwin:
    """Video Swin-T (D=96, depths 2-2-6-2), patch 2x4x4, window 8x7x7: 28M parameters."""
    return _create("swin3d_t", pretrained, **kwargs)


@register_model
def swin3d_s(pretrained: bool = False, **kwargs: Any) -> VideoSwin:
    """Video Swin-S (D=96, depths 2-2-18-2), patch 2x4x4, window 8x7x7."""
    return _create("swin3d_s", pretrained, **kwargs)


@register_model
def swin3d_b(pretrained: bool = False, **kwargs: Any) -> VideoSwin:
    """Video Swin-B (D=128, depths 2-2-18-2), patch 2x4x4, window 8x7x7: AdaptFormer's video Swin."""
    return _create("swin3d_b", pretrained, **kwargs)
