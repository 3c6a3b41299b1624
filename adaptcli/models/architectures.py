"""adaptcli's own architectures, added to timm's model registry: importing this module is enough.

Each module imported here defines its models with timm's ``@register_model``
(``video_vit_*``, ``swin3d_*``, ``*_demo_*``), so ``timm.create_model(name)`` builds them.
"""

from adaptcli.models import demo_models, video_swin, video_vit  # noqa: F401
