"""Build the adapted model of a run and the matching data stream settings."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError
from adaptcli.methods.base import AdaptInfo
from adaptcli.output import Output


def is_video_model(model: nn.Module) -> bool:
    """Video backbones embed tubelets with a Conv3d, or run an image ViT on frames with a temporal shift."""
    from adaptcli.models.frame_shift import is_frame_shift_model

    if is_frame_shift_model(model):
        return True
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


@dataclass
class AdaptedModel:
    """A backbone with a method injected, and what the method did (needed to save, count and merge)."""

    model: nn.Module
    info: AdaptInfo


def build_backbone(config: RunConfig, num_classes: int, *, load_checkpoint: bool = True,
                   output: Output | None = None) -> nn.Module:
    """The backbone of the run, with its checkpoint loaded (before any method is injected).

    The weights a checkpoint does not hold are drawn from torch's global generator: a caller that
    wants them reproducible seeds it first (training does, with ``train.seed``). The checkpoint's
    load summary goes to ``output.warn`` (stderr by default).
    """
    from adaptcli.models.build import create_backbone

    model = create_backbone(config.model, num_classes)
    if load_checkpoint and config.model.checkpoint:
        from adaptcli.models.checkpoints import load_checkpoint as load

        report = load(model, config.model.checkpoint)
        (output or Output()).warn(report.summary())
    return model


def build_adapted_model(config: RunConfig, num_classes: int, *, load_checkpoint: bool = True,
                        output: Output | None = None) -> AdaptedModel:
    """Backbone + checkpoint + method, trainable set marked (seeding as :func:`build_backbone`)."""
    from adaptcli.methods.apply import apply_method

    model = build_backbone(config, num_classes, load_checkpoint=load_checkpoint, output=output)
    info = apply_method(model, config.method, config.method_options, head_norm=config.head.norm,
                        num_frames=config.model.num_frames)
    return AdaptedModel(model, info)


def check_modality(model: nn.Module, modality: str, model_name: str) -> None:
    """Refuse video shards with an image model and the reverse, naming a model of the same size that fits."""
    video_model = is_video_model(model)
    if modality == "video" and not video_model:
        raise AdaptError(
            f"the shards hold videos but '{model_name}' is an image model; use a video backbone "
            f"(--model {counterpart(model_name, 'video')}), --method zeroi2v (this image model on the frames) "
            "or image shards"
        )
    if modality == "image" and video_model:
        from adaptcli.models.frame_shift import is_frame_shift_model

        if is_frame_shift_model(model):
            raise AdaptError(f"the shards hold images but the method runs '{model_name}' on video frames (zeroi2v); "
                             "use video shards, or another method for images")
        raise AdaptError(
            f"the shards hold images but '{model_name}' is a video model; use an image backbone "
            f"(--model {counterpart(model_name, 'image')}) or video shards"
        )


#: A backbone of each size per modality; ``test`` is the tiny pair the CPU-trial recipes (quick) use.
SIZED_MODELS = {
    "video": {"test": "video_vit_test", "small": "video_vit_small_patch16", "base": "video_vit_base_patch16",
              "large": "video_vit_large_patch16"},
    "image": {"test": "test_vit", "small": "vit_small_patch16_224", "base": "vit_base_patch16_224",
              "large": "vit_large_patch16_224"},
}
_SIZE_WORDS = {"test": "test", "demo": "test", "tiny": "small", "small": "small", "_t": "small", "_s": "small",
               "large": "large", "huge": "large"}


def counterpart(model_name: str, modality: str) -> str:
    """The backbone of ``modality`` closest in size to ``model_name`` (base when its name says no size)."""
    name = model_name.lower()
    size = next((size for word, size in _SIZE_WORDS.items()
                 if word in name.split("_") or (word.startswith("_") and name.endswith(word))), "base")
    return SIZED_MODELS[modality][size]
