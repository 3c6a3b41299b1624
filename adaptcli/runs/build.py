"""Build the adapted model of a run and the matching data stream settings."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError


def is_video_model(model: nn.Module) -> bool:
    """Video backbones embed tubelets with a Conv3d."""
    proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    proj = getattr(proj, "base_layer", proj)  # a method may wrap it (SSF)
    return isinstance(proj, nn.Conv3d)


@dataclass
class Normalisation:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def normalisation(model: nn.Module) -> Normalisation:
    """Mean and std the backbone was pre-trained with (``timm.data.resolve_model_data_config``)."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    return Normalisation(mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))  # type: ignore[arg-type]


def build_backbone(config: RunConfig, num_classes: int, *, load_checkpoint: bool = True, quiet: bool = False) -> nn.Module:
    """The backbone of the run, with its checkpoint loaded (before any method is injected)."""
    from adaptcli.models.build import create_backbone

    torch.manual_seed(config.train.seed)
    model = create_backbone(config.model, num_classes)
    if load_checkpoint and config.model.checkpoint:
        from adaptcli.models.checkpoints import load_checkpoint as load

        report = load(model, config.model.checkpoint)
        if not quiet:
            print(report.summary(), file=sys.stderr)
    return model


def build_adapted_model(config: RunConfig, num_classes: int, *, load_checkpoint: bool = True, quiet: bool = False) -> nn.Module:
    """Backbone + checkpoint + method, trainable set marked."""
    from adaptcli.methods.apply import apply_method

    model = build_backbone(config, num_classes, load_checkpoint=load_checkpoint, quiet=quiet)
    apply_method(model, config.method, config.method_options, head_norm=config.head.norm)
    return model


def check_modality(model: nn.Module, modality: str, model_name: str) -> None:
    """Refuse video shards with an image model and the reverse, with the fix in the message."""
    video_model = is_video_model(model)
    if modality == "video" and not video_model:
        raise AdaptError(
            f"the shards hold videos but '{model_name}' is an image model; use a video backbone "
            "(--model video_vit_base_patch16) or image shards"
        )
    if modality == "image" and video_model:
        raise AdaptError(
            f"the shards hold images but '{model_name}' is a video model; use an image backbone "
            "(--model vit_base_patch16_224) or video shards"
        )
