"""An image ViT run on video frames with a head-wise temporal shift inside attention (ZeroI2V's STDHA).

ZeroI2V (Li et al., ECCV 2024; MCG-NJU/ZeroI2V ``mmaction/models/common/stdha.py``, ``TemporalShift``
with ``divide_head=False``, applied to ``k`` and ``v`` after the in-projection) runs each frame through
the image ViT and lets a few attention heads read their keys and values from other frames: with
``G = D // shift_div`` channels per group (one head by default), group ``g`` (channels
``g*G:(g+1)*G`` of the key and of the value) of frame ``t`` takes frame ``t - offsets[g]``'s; where
that frame does not exist the frame keeps
its own (the official code shifts a clone, so the edges are not zeroed). The official defaults:
``shift_div=12``, offsets ``(1, -1)`` (``configs/recognition/vit_zero_clip/CLIP-B_k400_8x16x1.py``:
``stdha_cfg=dict(shift_div=12, divide_head=False)``; on ViT-B/16, 768 // 12 = 64 channels, one head per
direction); SSv2 adds offsets 2 and -2 (``CLIP-B_sthv2_u16.py``: ``long_shift_div=12``,
``long_shift_right=True``). The shift is parameter-free and moves no FLOPs: the deployed model is the
image ViT with this shift, frames folded into the batch, and per-frame logits averaged (equal to
averaging the per-frame features before the linear head, as the official I3D head does).

The shift is :class:`ShiftedQkv`, a fused ``qkv`` linear that keeps the image model's parameter names
(``attn.qkv.weight``/``bias``), so the image ViT's state dict loads unchanged.

Optionally the model also keeps the official learned ``temporal_embedding`` (``ViT_Zero_CLIP`` in
``mmaction/models/backbones/vit_zero_clip.py``): a ``1 x T x D`` table, zeros at the start, whose row ``t``
is added to every token of frame ``t`` (class token included) after the position embedding and before
``ln_pre`` (timm's ``norm_pre``); clips must then have exactly ``T`` frames (the official forward asserts
``T == self.num_frames``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from adaptcli.errors import AdaptError, ConfigError, UnsupportedModelError
from adaptcli.models.blocks import set_submodule, transformer_blocks

#: The official Kinetics-400 offsets (CLIP-B_k400_8x16x1.py); the group defaults to one head (its shift_div=12
#: on ViT-B/16's 12 heads).
DEFAULT_OFFSETS = (1, -1)


def temporal_head_shift(qkv: torch.Tensor, num_frames: int, group: int, offsets: Sequence[int]) -> torch.Tensor:
    """Shift key and value channel groups of ``qkv`` (``(B*T) x N x 3D``, frames inner) along time.

    Group ``g`` (``group`` channels from ``g * group``) of the key and of the value at frame ``t``
    becomes frame ``t - offsets[g]``'s, where that frame exists; the query is left alone.
    """
    frames_batch, tokens, width = qkv.shape
    if frames_batch % num_frames:
        raise ValueError(f"{frames_batch} frames in the batch is not a multiple of {num_frames} frames per clip")
    dim = width // 3
    x = qkv.view(frames_batch // num_frames, num_frames, tokens, 3, dim)
    out = x.clone()
    for index, offset in enumerate(offsets):
        channels = slice(index * group, (index + 1) * group)
        if offset > 0:
            out[:, offset:, :, 1:, channels] = x[:, :-offset, :, 1:, channels]
        elif offset < 0:
            out[:, :offset, :, 1:, channels] = x[:, -offset:, :, 1:, channels]
    return out.view(frames_batch, tokens, width)


class ShiftedQkv(nn.Module):
    """A fused ``qkv`` projection followed by :func:`temporal_head_shift`; holds the linear's own
    parameters (same names, same tensors), so nothing new is trained or saved."""

    def __init__(self, linear: nn.Linear, group: int, offsets: Sequence[int]):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.group = group
        self.offsets = tuple(int(o) for o in offsets)
        self.num_frames = 1  # set by the model's frame hook on every forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_head_shift(F.linear(x, self.weight, self.bias), self.num_frames, self.group, self.offsets)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, group={self.group}, offsets={self.offsets}"


def shift_group(model: nn.Module, shift_div: int | None, offsets: Sequence[int]) -> int:
    """Channels per shifted group, ``D // shift_div`` (``shift_div`` None: one head); a one-line refusal
    unless it is a whole number of heads and every group fits in ``D``."""
    blocks = transformer_blocks(model)
    attn = blocks[0][1].attn
    qkv, heads = getattr(attn, "qkv", None), getattr(attn, "num_heads", None)
    if not isinstance(qkv, (nn.Linear, ShiftedQkv)) or not isinstance(heads, int):
        raise UnsupportedModelError(
            f"the temporal head shift needs attention with one fused qkv linear and num_heads (timm ViT, CLIP, "
            f"DINOv2, SigLIP, DeiT-III); {type(attn).__name__} has none")
    dim = qkv.in_features
    group, head_dim = dim // (shift_div or heads), dim // heads
    if group and group % head_dim == 0 and group * len(offsets) > dim:
        raise UnsupportedModelError(
            f"{len(offsets)} shift offsets of {group // head_dim} head(s) each need {len(offsets) * group // head_dim} "
            f"heads, the model has {heads}; give fewer method.offsets or a larger method.shift_div")
    if group == 0 or group % head_dim:
        raise UnsupportedModelError(
            f"shift_div {shift_div} gives {group}-channel groups, not whole heads of {head_dim} channels; "
            f"set method.shift_div to a divisor of num_heads={heads}, "
            f"e.g. --set method.shift_div={heads}")
    return group


def attach_frame_shift(model: nn.Module, shift_div: int | None = None,
                       offsets: Sequence[int] = DEFAULT_OFFSETS, temporal_embedding: int | None = None) -> None:
    """Make image ViT ``model`` take clips ``B x C x T x H x W``: frames through the ViT with every
    block's ``attn.qkv`` shifted, per-frame outputs averaged over ``T`` (an image ``B x C x H x W`` is
    a one-frame clip, for which the model is the image model). In place; keys unchanged, except that
    ``temporal_embedding=T`` adds the learned ``temporal_embedding`` table (``1 x T x D``, zeros; the
    model then takes clips of ``T`` frames only)."""
    group = shift_group(model, shift_div, offsets)
    if temporal_embedding is not None:
        add_temporal_embedding(model, temporal_embedding)
    for name, block in transformer_blocks(model):
        if not isinstance(block.attn.qkv, ShiftedQkv):
            set_submodule(model, f"{name}.attn.qkv", ShiftedQkv(block.attn.qkv, group, offsets))
    model.frame_shift = dict(shift_div=shift_div, offsets=list(offsets))
    if temporal_embedding is not None:
        model.frame_shift["temporal_embedding"] = temporal_embedding
    model.register_forward_pre_hook(clip_to_frames)
    model.register_forward_hook(average_frames)


def add_temporal_embedding(model: nn.Module, num_frames: int) -> None:
    """``model.temporal_embedding``, ``1 x num_frames x D`` zeros (the official init), added to every token of
    each frame by a forward pre-hook on ``model.norm_pre`` (the official: after the position embedding,
    before ``ln_pre``); a one-line refusal where the model has no ``norm_pre`` to mark that place."""
    norm_pre = getattr(model, "norm_pre", None)
    if not isinstance(norm_pre, nn.Module) or not isinstance(getattr(model, "pos_embed", None), torch.Tensor):
        raise UnsupportedModelError(
            f"method.temporal_embedding is added after the position embedding (pos_embed), before norm_pre; "
            f"{type(model).__name__} has no such pair; use a timm VisionTransformer (CLIP, DINOv2, SigLIP, "
            "DeiT-III) or --set method.temporal_embedding=false")
    width = model.pos_embed.shape[-1]
    model.temporal_embedding = nn.Parameter(
        torch.zeros(1, num_frames, width, dtype=model.pos_embed.dtype, device=model.pos_embed.device))
    norm_pre.register_forward_pre_hook(TemporalEmbeddingHook(model))


class TemporalEmbeddingHook:
    """Forward pre-hook of ``norm_pre``: ``x + temporal_embedding[t]`` on every token of frame ``t``
    (``x`` is ``(B*T) x N x D``, frames inner). Holds the model (a deep copy of the model copies the
    hook with it), and reads the table at each call (so ``.to()`` and loading reach it)."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, table = args[0], self.model.temporal_embedding
        frames = table.shape[1]
        clips = x.view(-1, frames, *x.shape[1:]) + table.unsqueeze(2)
        return (clips.view(x.shape), *args[1:])


def check_offsets_fit(model: nn.Module, num_frames: int) -> None:
    """Every offset of a frame-shift model that is about to train reaches another frame of a ``num_frames`` clip: a
    group whose offset is 0, or ``num_frames`` or more, would always keep its own frame (the shift silently off).
    Only checked before training: exports written with such offsets still load."""
    offsets = model.frame_shift["offsets"] if is_frame_shift_model(model) else []
    if 0 in offsets:
        raise ConfigError(f"method.offsets={list(offsets)}: an offset of 0 reads the frame's own keys and values, no "
                          "shift; give non-zero frame offsets (the official K400 ones: --set method.offsets=[1,-1])")
    beyond = [o for o in offsets if abs(o) >= num_frames]
    if beyond and num_frames == 1:
        raise ConfigError(f"method.offsets {beyond}: a 1-frame clip (model.num_frames=1) has no other frame to shift "
                          "to; raise model.num_frames (the official K400 config: 8)")
    if beyond:
        raise ConfigError(f"method.offsets {beyond} reach no frame of a {num_frames}-frame clip (model.num_frames): "
                          f"give offsets between {-(num_frames - 1)} and {num_frames - 1}, or raise model.num_frames")


def is_frame_shift_model(model: nn.Module) -> bool:
    """A model :func:`attach_frame_shift` turned into a video model."""
    return isinstance(getattr(model, "frame_shift", None), dict)


def clip_to_frames(model: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    x = args[0]
    if x.ndim == 4:  # an image is a one-frame clip: the shift keeps every frame's own keys and values
        x = x.unsqueeze(2)
    if x.ndim != 5:
        raise ValueError(f"a frame-shift video model takes B x C x T x H x W clips, got shape {tuple(x.shape)}")
    batch, channels, frames, height, width = x.shape
    table = getattr(model, "temporal_embedding", None)
    if table is not None and table.shape[1] != frames:
        raise FrameCountError(
            f"this model's temporal_embedding is learned for clips of {table.shape[1]} frames, the input has "
            f"{frames} (shape {tuple(args[0].shape)}); give clips of {table.shape[1]} frames, as it was trained "
            "(the official ZeroI2V refuses other lengths too)")
    for module in model.modules():
        if isinstance(module, ShiftedQkv):
            module.num_frames = frames
    model._clip_shape = (batch, frames)
    return (x.transpose(1, 2).reshape(batch * frames, channels, height, width), *args[1:])


class FrameCountError(AdaptError, ValueError):
    """A clip whose frame count differs from the frames the model's ``temporal_embedding`` was learned for."""


def average_frames(model: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    batch, frames = model._clip_shape
    return output.view(batch, frames, *output.shape[1:]).mean(dim=1)


__all__ = ["FrameCountError", "ShiftedQkv", "TemporalEmbeddingHook", "add_temporal_embedding", "attach_frame_shift",
           "is_frame_shift_model", "shift_group", "temporal_head_shift", "DEFAULT_OFFSETS"]
