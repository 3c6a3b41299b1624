"""``adaptcli_adapted``: any adapted run as a timm architecture, so ``timm.create_model`` rebuilds it.

A ``--full`` export in the timm folder format names this architecture in its ``config.json`` and
keeps the run's resolved configuration in ``model_args``; timm calls :func:`adaptcli_adapted` with
those arguments and loads ``model.safetensors`` itself. Registered when timm is imported after
``import adaptcli`` (see ``adaptcli/__init__.py``), or by importing this module.
"""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

import adaptcli.models.architectures  # noqa: F401  (video_vit_*: what adaptcli_adapted and merged video exports name)
from adaptcli.config import header_config
from adaptcli.errors import AdaptError

ARCHITECTURE = "adaptcli_adapted"


def _build(run_config: dict[str, Any], num_classes: int, in_chans: int = 3, **_: Any) -> nn.Module:
    """The run's backbone + method with random weights (timm loads the folder's weights after)."""
    from adaptcli.output import Output
    from adaptcli.runs.build import build_adapted_model

    if in_chans != 3:
        raise AdaptError(f"{ARCHITECTURE} models take 3 input channels, not {in_chans}")
    config = header_config({"config": run_config})
    return build_adapted_model(config, num_classes, load_checkpoint=False, output=Output.silent()).model


default_cfgs = generate_default_cfgs({ARCHITECTURE: {"url": "", "num_classes": 0, "classifier": "head"}})


@register_model
def adaptcli_adapted(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """An adaptcli run's adapted model; ``run_config`` (the resolved configuration) and ``num_classes``."""
    if "run_config" not in kwargs or "num_classes" not in kwargs:
        raise AdaptError(f"{ARCHITECTURE} needs run_config= and num_classes= (a timm folder's config.json has them)")
    return build_model_with_cfg(_build, ARCHITECTURE, pretrained, kwargs_filter=("img_size",), **kwargs)
