"""Registers adaptcli's own architectures with timm (importing this module is enough)."""

from adaptcli.models import demo_models, video_swin, video_vit  # noqa: F401  (video_vit_*, swin3d_*, *_demo_* via timm.register_model)
