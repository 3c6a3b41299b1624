"""Build a backbone by name: a timm model or one of adaptcli's registered video ViTs."""

from __future__ import annotations

import os

from torch import nn

from adaptcli.models.config import ModelConfig
from adaptcli.errors import AdaptError


def create_backbone(config: ModelConfig, num_classes: int) -> nn.Module:
    """Create the model with random weights (never downloads unless ``config.pretrained``)."""
    import timm

    import adaptcli.models.architectures  # noqa: F401  (registers video_vit_*, swin3d_* with timm)

    if not timm.is_model(config.name):
        close = timm.list_models(f"*{config.name.split('_')[0]}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise AdaptError(f"unknown model '{config.name}'{hint}; see timm.list_models(), video_vit_* or swin3d_t|s|b")
    kwargs = {"num_classes": num_classes, "drop_path_rate": config.drop_path}
    kwargs.update(model_size_kwargs(config))
    try:
        if config.pretrained and config.checkpoint is None:
            model = _create_pretrained(config.name, kwargs)
        else:
            model = timm.create_model(config.name, pretrained=False, **kwargs)
    except ValueError as exc:  # e.g. frames not a multiple of the tubelet size
        raise AdaptError(f"'{config.name}' cannot be built with model.img_size={config.img_size}, "
                         f"model.num_frames={config.num_frames}: {exc}") from None
    check_input_size(model, config)
    set_head_dropout(model, config)
    use_fused_attention(model)
    return model


def set_head_dropout(model: nn.Module, config: ModelConfig) -> None:
    """``model.head_dropout`` on the model's ``head_drop`` (timm ViTs, the video ViT), or a one-line refusal."""
    if not config.head_dropout:
        return
    head_drop = getattr(model, "head_drop", None)
    if not isinstance(head_drop, nn.Dropout):
        raise AdaptError(f"model.head_dropout={config.head_dropout:g}: {config.name} has no head_drop (a dropout "
                         "before its classifier) to set; use a ViT or the video ViT, or set model.head_dropout=0")
    head_drop.p = config.head_dropout


def shape_only_backbone(config: ModelConfig, num_classes: int) -> nn.Module:
    """The model built on the meta device: its shapes and structure without memory or weights (instant, and
    nothing is downloaded); for counting parameters and checking the model against the data before any work."""
    import dataclasses

    import timm  # noqa: F401  (first: on torch 2.6 the torch._dynamo import it brings runs ops, which fail on meta tensors)
    import torch

    with torch.device("meta"):
        return create_backbone(dataclasses.replace(config, pretrained=False), num_classes)


def use_fused_attention(model: nn.Module) -> None:
    """Attention on ``F.scaled_dot_product_attention`` in every timm attention module: timm keeps it off
    where it calls it experimental (Swin's window attention). ``TIMM_FUSED_ATTN=0`` in the environment
    (timm's own switch) keeps timm's explicit attention, for debugging."""
    if os.environ.get("TIMM_FUSED_ATTN", "").strip() == "0":
        return
    for module in model.modules():
        if isinstance(getattr(module, "fused_attn", None), bool):
            module.fused_attn = True


def check_input_size(model: nn.Module, config: ModelConfig) -> None:
    """``model.img_size`` must be a multiple of the patch size (and frames of the tubelet size)."""
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    side = patch[-1] if isinstance(patch, (tuple, list)) else patch
    if isinstance(side, int) and side > 1 and config.img_size % side:
        fit = max(side, round(config.img_size / side) * side)
        raise AdaptError(f"model.img_size={config.img_size} is not a multiple of {config.name}'s patch size {side} "
                         f"(expected a multiple of {side}, such as {fit})")


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
