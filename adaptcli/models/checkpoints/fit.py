"""Fit a state dict in timm's key names to a built model, and say exactly what happened.

* Video Swin: an image checkpoint or relative-position tables of another window size are refused;
* video model: an image checkpoint (2-D patch kernel) is inflated (:mod:`adaptcli.models.inflate`);
  a stored position table is checked to be the fixed sinusoid one and then ignored, since the model
  recomputes it for its own frame count and grid;
* timm model: the architecture's own timm converter (``checkpoint_filter_fn`` of its module) runs,
  which resamples position tables to the model's grid, patch kernels to its patch size and Swin's
  relative position tables to its window;
* a classifier (or ``fc_norm``) of another shape is dropped and left newly initialised;
* a backbone weight that is missing, of another shape, or unread while the model has the module it
  belongs to is an error (with ``strict_backbone``), never a silent partial load.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from adaptcli.errors import AdaptError
from adaptcli.models.blocks import classifier, qualified_name
from adaptcli.models.checkpoints.report import LoadReport
from adaptcli.models.inflate import PATCH_KERNEL, image_to_video
from adaptcli.models.video_swin import VideoSwin
from adaptcli.models.video_vit import VideoVisionTransformer, sinusoid_table

SHOWN = 4  # keys named in a one-line error


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor], report: LoadReport,
                   strict_backbone: bool = True) -> None:
    """Load ``state`` into ``model`` in place, filling ``report``."""
    if isinstance(model, VideoVisionTransformer):
        state = _for_video(model, state, report)
    elif isinstance(model, VideoSwin):
        state = _for_video_swin(model, state, report)
    else:
        state = _for_image(model, state, report)

    expected = model.state_dict()
    heads = _head_prefixes(model)
    to_load: dict[str, torch.Tensor] = {}
    mismatched: list[str] = []
    unknown: list[str] = []
    resized: list[str] = []
    for key, value in state.items():
        if key not in expected:
            report.unused.append(key)
            unknown.append(key)
        elif value.shape != expected[key].shape:
            if _under(key, heads):
                report.unused.append(key)
                resized.append(f"{key} {tuple(value.shape)} vs {tuple(expected[key].shape)}")
            else:
                mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(expected[key].shape)}")
        else:
            to_load[key] = value
    if resized:
        report.notes.append(f"classifier of another size dropped, newly initialised: {', '.join(resized)}")
    missing = [k for k in expected if k not in to_load]
    report.missing = [k for k in missing if _under(k, heads)]
    problems = []
    backbone_missing = [k for k in missing if not _under(k, heads)]
    if backbone_missing:
        problems.append(f"{len(backbone_missing)} backbone weights missing ({_first(backbone_missing)})")
    if mismatched:
        problems.append(f"{len(mismatched)} of another shape ({_first(mismatched)})")
    unread = [k for k in unknown if _belongs_to_model(model, k)]
    if unread:
        problems.append(f"{len(unread)} weights the model cannot take ({_first(unread)})")
    if problems:
        message = (
            f"checkpoint {report.path} ({report.format}) does not fit {type(model).__name__}: "
            + "; ".join(problems)
        )
        if strict_backbone:
            raise AdaptError(message + "; is it the right architecture and size?")
        report.notes.append(message)
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)


def _for_video(model: VideoVisionTransformer, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
    kernel = state.get(PATCH_KERNEL)
    if kernel is not None and kernel.ndim == 4:
        tubelet = model.patch_embed.tubelet_size
        state, image_only = image_to_video(state, tubelet)
        report.format += ", image weights inflated to video"
        report.resampled.append(f"{PATCH_KERNEL} {tuple(kernel.shape)} -> {tuple(state[PATCH_KERNEL].shape)}")
        report.unused.extend(image_only)
        report.notes.append(
            f"2-D patch kernel inflated over {tubelet} frames (divided by {tubelet}); the image "
            "position table and class token are not used (fixed space-time sinusoid table, mean pooling)"
        )
        return state
    table = state.pop("pos_embed", None)
    if table is not None:
        fixed = sinusoid_table(table.shape[1], table.shape[-1]) if table.ndim == 3 else None
        if fixed is None or fixed.shape != table.shape or not torch.allclose(table.float(), fixed, atol=1e-4):
            raise AdaptError(
                f"checkpoint {report.path} has a learned position table (pos_embed {tuple(table.shape)}); "
                "video_vit uses VideoMAE's fixed sinusoid table and cannot take it"
            )
        report.unused.append("pos_embed")
        report.notes.append("stored fixed sinusoid pos_embed ignored: recomputed for this model's frames and grid")
    return state


def _for_video_swin(model: VideoSwin, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
    """Refuse image weights and another window size; take the model's own relative-position index.

    The index is a fixed function of the window size (a buffer both layouts store, the same
    computation in both codes); once the tables' shapes agree, the model's own index is the one the
    stored tables were trained with.
    """
    kernel = state.get(PATCH_KERNEL)
    if kernel is not None and kernel.ndim != 5:
        raise AdaptError(
            f"checkpoint {report.path} holds an image model (2-D patch kernel); swin3d takes a Video "
            "Swin checkpoint (the official release or torchvision's swin3d weights)"
        )
    expected = model.state_dict()
    state = dict(state)
    for key, value in list(state.items()):
        if key.endswith("attn.relative_position_bias_table") and key in expected:
            if value.shape != expected[key].shape:
                window = "x".join(str(w) for w in model.window_size)
                raise AdaptError(
                    f"checkpoint {report.path}: {key} has {value.shape[0]} rows but this model's "
                    f"{window} window needs {expected[key].shape[0]}; the checkpoint was trained with "
                    "another window size, which adaptcli does not interpolate"
                )
    for key in expected:
        table = key.replace("relative_position_index", "relative_position_bias_table")
        if key.endswith("attn.relative_position_index") and table in state:
            state[key] = expected[key]
    return state


def _for_image(model: nn.Module, state: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
    kernel = state.get(PATCH_KERNEL)
    if kernel is not None and kernel.ndim == 5:
        raise AdaptError(
            f"checkpoint {report.path} holds a video model (3-D patch kernel); "
            "use it with a video_vit_* model, not with an image model"
        )
    module = sys.modules.get(type(model).__module__)
    convert = getattr(module, "checkpoint_filter_fn", None)
    if convert is None or _in_model_layout(model, state):
        return state
    before = {k: tuple(v.shape) for k, v in state.items()}
    state = convert(state, model)
    for key, value in state.items():
        if key in before and tuple(value.shape) != before[key]:
            report.resampled.append(f"{key} {before[key]} -> {tuple(value.shape)}")
    removed = sorted(set(before) - set(state))
    renamed = set(state) - set(before)
    if renamed:
        report.notes.append(f"timm's converter renamed {len(renamed)} keys to the model's layout")
    elif removed:
        report.unused.extend(removed)
    return state


def _in_model_layout(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Every backbone tensor of ``model`` under its own name and shape, nothing else: no conversion is
    needed (and none is tried: timm 1.0.28's Swin converter takes a headless state dict for the original
    release's layout and moves its patch-merging keys one stage on)."""
    own = model.state_dict()
    heads = tuple(p + "." for p in _head_prefixes(model))
    wanted = {k for k, _ in model.named_parameters() if not k.startswith(heads)}
    return wanted <= set(state) and all(k in own and tuple(own[k].shape) == tuple(v.shape) for k, v in state.items())


def _head_prefixes(model: nn.Module) -> list[str]:
    """The classifier and ``fc_norm``: these may be missing (newly initialised) or of another size."""
    prefixes = []
    try:
        prefixes.append(qualified_name(model, classifier(model)))
    except ValueError:
        pass
    if isinstance(getattr(model, "fc_norm", None), nn.Module):
        prefixes.append("fc_norm")
    return prefixes


def _belongs_to_model(model: nn.Module, key: str) -> bool:
    """An unread key for a module the model has: a sign of a wrong architecture, not a leftover.

    Top-level layers the model replaced by Identity (a final ``norm`` under mean pooling, a head
    when ``num_classes=0``) are leftovers.
    """
    parent = key.rpartition(".")[0]
    if not parent:
        return False
    try:
        module = model.get_submodule(parent)
    except AttributeError:
        return False
    return not (isinstance(module, nn.Identity) and "." not in parent)


def _under(key: str, prefixes: list[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _first(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (", ..." if len(keys) > SHOWN else "")
