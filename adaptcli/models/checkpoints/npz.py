"""ImageNet-21k JAX ``.npz`` ViT checkpoints (the original ``vit_jax`` / augreg layout).

timm already knows this layout (``vision_transformer._load_weights``); it writes into a model. So
the architecture is read off the array shapes, a plain timm ViT of that shape is built, timm's
reader fills it, and its state dict goes on to the common path (resampling, head, inflation).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from adaptcli.errors import AdaptError

#: Layout prefixes timm's reader accepts for the classic per-block layout.
PREFIXES = ("", "opt/target/")


def read_jax_npz(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The checkpoint as a timm ViT state dict, and the archive keys timm does not read."""
    import numpy as np
    from timm.models.vision_transformer import VisionTransformer, _load_weights

    with np.load(str(path), allow_pickle=False) as archive:
        keys = set(archive.files)
        prefix = _layout_prefix(keys, path)
        shape = {key: archive[key].shape for key in keys}

    def dims(name: str) -> tuple[int, ...]:
        return shape[prefix + name]

    block = "Transformer/encoderblock_{}/"
    depth = sum(1 for key in keys if key.startswith(prefix + "Transformer/encoderblock_") and key.endswith("LayerNorm_0/scale"))
    patch, _, in_chans, width = dims("embedding/kernel")
    _, heads, _ = dims(block.format(0) + "MultiHeadDotProductAttention_1/query/kernel")
    _, hidden = dims(block.format(0) + "MlpBlock_3/Dense_0/kernel")
    has_cls = prefix + "cls" in keys
    tokens = dims("Transformer/posembed_input/pos_embedding")[1] - int(has_cls)
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise AdaptError(f"{path}: position table of {tokens} tokens is not a square grid")
    num_classes = dims("head/kernel")[-1] if prefix + "head/kernel" in keys else 0

    model = VisionTransformer(
        img_size=grid * patch, patch_size=patch, in_chans=in_chans, embed_dim=width, depth=depth,
        num_heads=heads, mlp_ratio=hidden / width, qkv_bias=True, class_token=has_cls,
        global_pool="token" if has_cls else "avg", fc_norm=False, num_classes=num_classes,
    )
    _load_weights(model, str(path), prefix=prefix)
    unread = sorted(key for key in keys if "pre_logits" in key)
    return model.state_dict(), unread


def _layout_prefix(keys: set[str], path: str | Path) -> str:
    for prefix in PREFIXES:
        if f"{prefix}embedding/kernel" in keys and f"{prefix}Transformer/encoderblock_0/LayerNorm_0/scale" in keys:
            return prefix
    raise AdaptError(
        f"{path}: not a ViT .npz in the vit_jax layout (no embedding/kernel and "
        "Transformer/encoderblock_0/...); convert it to a timm state dict first"
    )
