"""Build a backbone by name: a timm model or one of adaptcli's registered video ViTs."""

from __future__ import annotations

from torch import nn

from adaptcli.models.config import ModelConfig
from adaptcli.errors import AdaptError


def create_backbone(config: ModelConfig, num_classes: int) -> nn.Module:
    """Create the model with random weights (never downloads unless ``config.pretrained``)."""
    import timm

    import adaptcli.models.registry  # noqa: F401  (registers video_vit_*, swin3d_* with timm)

    if not timm.is_model(config.name):
        close = timm.list_models(f"*{config.name.split('_')[0]}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise AdaptError(f"unknown model '{config.name}'{hint}; see timm.list_models(), video_vit_* or swin3d_t|s|b")
    kwargs = {"num_classes": num_classes, "drop_path_rate": config.drop_path}
    kwargs.update(model_size_kwargs(config))
    if config.pretrained and config.checkpoint is None:
        return _create_pretrained(config.name, kwargs)
    return timm.create_model(config.name, pretrained=False, **kwargs)


def model_size_kwargs(config: ModelConfig) -> dict[str, int]:
    """``img_size`` / ``num_frames`` only where the architecture takes them and they differ."""
    import timm

    defaults = timm.get_pretrained_cfg(config.name) if hasattr(timm, "get_pretrained_cfg") else None
    kwargs: dict[str, int] = {}
    default_size = None
    if defaults is not None and getattr(defaults, "input_size", None):
        default_size = defaults.input_size[-1]
    if default_size is not None and config.img_size != default_size:
        kwargs["img_size"] = config.img_size
    if config.name.startswith("video_vit"):
        kwargs["num_frames"] = config.num_frames
    return kwargs


def _create_pretrained(name: str, kwargs: dict) -> nn.Module:
    import timm

    cfg = timm.get_pretrained_cfg(name)
    if cfg is not None and not cfg.has_weights:
        # timm would warn and carry on with random weights; that is never what the user meant.
        raise AdaptError(f"'{name}' has no published weights to fetch; pass --checkpoint FILE")
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:  # network, hub or file errors: one line with the fix
        raise AdaptError(
            f"could not fetch pretrained weights for '{name}' ({type(exc).__name__}); "
            "download them elsewhere and pass --checkpoint FILE"
        ) from exc
