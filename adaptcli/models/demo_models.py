"""The demo's small ViT pair: an image model and its video twin with the same width and depth.

``vit_demo_patch8`` is a timm ``VisionTransformer`` (32 px, 8 px patches, D=96, depth 4, 3 heads)
without a class token, read out like the video model (mean of the patch tokens, ``fc_norm``), so
every weight of the image model except its position table has a place in the video twin. Its
position table is FIXED (a buffer, not learned) and is VideoMAE's sinusoid table, the one the video
twin adds: the image model then learns with the same kind and scale of position signal. (A learned
timm table ends up ~10x smaller in norm than the sinusoid table, and a frozen image backbone fed
the video model's table sees a perturbation it never met in pre-training.)
``video_vit_demo_patch8`` is adaptcli's video ViT with the same dimensions, 8 frames, tubelet 2.
Both are small enough to train on 2 CPU cores in a minute.
"""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

from adaptcli.models.video_vit import VideoVisionTransformer, local_weights_cfg, sinusoid_table

#: Shared dimensions of the pair.
DEMO_DIMS: dict[str, Any] = dict(patch_size=8, embed_dim=96, depth=4, num_heads=3)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return local_weights_cfg(num_classes=10, input_size=(3, 32, 32), crop_pct=1.0, interpolation="bilinear", **kwargs)


default_cfgs = generate_default_cfgs({
    "vit_demo_patch8": _cfg(),
    "video_vit_demo_patch8": _cfg(),
})


@register_model
def vit_demo_patch8(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """Image ViT for the demo: 32 px, patch 8, D=96, depth 4, 3 heads, mean pooling + fc_norm."""
    args = dict(img_size=32, class_token=False, global_pool="avg", **DEMO_DIMS)
    model = build_model_with_cfg(VisionTransformer, "vit_demo_patch8", pretrained,
                                 pretrained_filter_fn=checkpoint_filter_fn, **{**args, **kwargs})
    table = sinusoid_table(model.patch_embed.num_patches, model.embed_dim)
    del model.pos_embed  # a Parameter in timm; here a fixed buffer (kept in the state dict)
    model.register_buffer("pos_embed", table.to(device=model.patch_embed.proj.weight.device))
    return model


@register_model
def video_vit_demo_patch8(pretrained: bool = False, **kwargs: Any) -> VideoVisionTransformer:
    """The video twin of ``vit_demo_patch8``: 32 px, 8 frames, tubelet 2 (4 x 4 x 4 = 64 tokens)."""
    args = dict(img_size=32, num_frames=8, tubelet_size=2, **DEMO_DIMS)
    return build_model_with_cfg(VideoVisionTransformer, "video_vit_demo_patch8", pretrained,
                                **{**args, **kwargs})
