"""Rebuild models from an export's header, never fetching or reading the original checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.config import header_config


def plain_model(meta: dict[str, Any]) -> nn.Module:
    """The backbone's own architecture with the task's classifier, random weights (for merged files)."""
    import timm

    import adaptcli.models.architectures  # noqa: F401  (registers video_vit_* with timm)
    from adaptcli.models.frame_shift import attach_frame_shift

    model = timm.create_model(meta["backbone"], pretrained=False, **meta["create_kwargs"])
    if meta.get("frame_shift"):  # an image ViT run on frames: its architecture includes the temporal shift
        attach_frame_shift(model, **meta["frame_shift"])
    return model


def adapted_architecture(meta: dict[str, Any]) -> tuple[nn.Module, RunConfig]:
    """Backbone + method of the exported run, random weights (the caller loads a state dict)."""
    from adaptcli.output import Output
    from adaptcli.runs.build import build_adapted_model

    config = header_config(meta)
    adapted = build_adapted_model(config, int(meta["num_classes"]), load_checkpoint=False, output=Output.silent())
    return adapted.model, config


def model_from_state(meta: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """The model a merged or full export holds: its architecture from ``meta``, ``state`` loaded strictly."""
    from adaptcli.deploy.modes import ExportMode
    from adaptcli.errors import AdaptError

    mode = ExportMode.from_header(meta["format"])
    if mode is ExportMode.MERGE:
        model = plain_model(meta)
    elif mode is ExportMode.FULL:
        model, _ = adapted_architecture(meta)
    else:
        raise AdaptError(f"an {meta['format']} export needs its backbone; load it with adaptcli.load(path, backbone=FILE)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise AdaptError(f"the export does not fit {meta['backbone']}: {str(exc).splitlines()[0]}") from exc
    return model.eval()


def backbone_with_checkpoint(meta: dict[str, Any], checkpoint: str | Path) -> nn.Module:
    """The plain backbone of an adapter file with ``checkpoint`` loaded (any supported layout)."""
    from adaptcli.models.checkpoints import load_checkpoint
    from adaptcli.runs.build import build_backbone

    config = header_config(meta)
    model = build_backbone(config, int(meta["num_classes"]), load_checkpoint=False)
    load_checkpoint(model, checkpoint)
    return model
