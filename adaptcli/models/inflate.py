"""Image ViT weights for the video ViT: inflate the 2-D patch kernel over the tubelet's time axis.

The property: with ``W3[:, :, i] = W2 / t`` for each of the ``t`` frames of a tubelet, a tubelet of
``t`` identical frames ``x`` embeds to ``sum_i (W2 / t) * x + b = W2 * x + b``, exactly the image
model's patch embedding of ``x``. So a static clip gives every tubelet the image model's patch
tokens (before position embedding).

Everything else carries over by name (blocks, norms). The image model's class token has no place in
the video model (mean pooling, no class token) and its learned position table is not used: the
video model adds its fixed space-time sinusoid table. Both are reported as unused.
"""

from __future__ import annotations

import torch

PATCH_KERNEL = "patch_embed.proj.weight"
#: Image-model keys the video model has no place for.
IMAGE_ONLY_KEYS = ("cls_token", "pos_embed", "reg_token")


def inflate_patch_kernel(weight: torch.Tensor, tubelet_size: int) -> torch.Tensor:
    """``D x C x p x p`` -> ``D x C x t x p x p``, each time slice ``weight / t``."""
    if weight.ndim != 4:
        raise ValueError(f"expected a 2-D patch kernel (4 dims), got shape {tuple(weight.shape)}")
    return (weight / tubelet_size).unsqueeze(2).repeat(1, 1, tubelet_size, 1, 1)


def image_to_video(state: dict[str, torch.Tensor], tubelet_size: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Inflate ``state`` (timm image ViT keys) in a copy; return it and the image-only keys left out."""
    out = {k: v for k, v in state.items() if k not in IMAGE_ONLY_KEYS}
    out[PATCH_KERNEL] = inflate_patch_kernel(state[PATCH_KERNEL], tubelet_size)
    return out, [k for k in IMAGE_ONLY_KEYS if k in state]
