"""Tiny backbones shared by the backbone tests: an image ViT, the video ViT and a Swin."""

from __future__ import annotations

import timm
import torch
from torch import nn

import adaptcli.models.architectures  # noqa: F401  (registers video_vit_*)

IMAGE_VIT = dict(model_name="vit_tiny_patch16_224", img_size=32, embed_dim=64, depth=2, num_heads=2)
VIDEO_VIT = dict(model_name="video_vit_test")  # D=64, depth 2, 2 heads, 32 px, 4 frames, tubelet 2
SWIN = dict(
    model_name="swin_tiny_patch4_window7_224", img_size=32, embed_dim=32, depths=(2, 2),
    num_heads=(2, 4), window_size=4,
)
SPECS = {"image_vit": IMAGE_VIT, "video_vit": VIDEO_VIT, "swin": SWIN}


def build(kind: str, num_classes: int = 5, seed: int = 0, **overrides) -> nn.Module:
    """A fresh model of ``kind`` with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    spec = {**SPECS[kind], **overrides}
    return timm.create_model(spec.pop("model_name"), pretrained=False, num_classes=num_classes, **spec).eval()


def batch_for(model: nn.Module, batch: int = 2, seed: int = 1) -> torch.Tensor:
    """A random input batch of the model's own shape (clips for the video ViT)."""
    generator = torch.Generator().manual_seed(seed)
    if hasattr(model, "num_frames"):
        grid = model.patch_embed.grid_size
        size = (3, model.num_frames, grid[1] * 16, grid[2] * 16)
    else:
        size = (3, *model.patch_embed.img_size)
    return torch.randn(batch, *size, generator=generator)


@torch.no_grad()
def randomise(model: nn.Module, names: list[str], scale: float = 0.2, seed: int = 3) -> None:
    """Move the named parameters away from their (identity) initial values."""
    generator = torch.Generator().manual_seed(seed)
    for name in names:
        param = model.get_parameter(name)
        param.copy_(torch.randn(param.shape, generator=generator) * scale)
