"""Registers adaptcli's own architectures with timm (importing this module is enough)."""

from adaptcli.models import video_vit  # noqa: F401  (video_vit_* via timm.register_model)
