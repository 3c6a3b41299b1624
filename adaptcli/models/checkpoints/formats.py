"""Recognise a checkpoint's layout from its keys and bring it to timm's key names.

=====================  ==============================================  ==============================
format                 recognised by                                   conversion
=====================  ==============================================  ==============================
``videomae-pretrain``  keys under ``encoder.`` (and ``decoder.``)      keep ``encoder.*`` stripped
``mae-pretrain``       ``mask_token`` or ``decoder_*`` keys            drop decoder and mask token
``videomae-finetune``  ``blocks.N.attn.q_bias`` / ``v_bias``           fuse into ``qkv.bias``
``video-swin``         3-D patch kernel, ``layers.I.blocks.J.*``       to torchvision's ``swin3d``
                       (the official mmaction release)                 names; ``cls_head`` dropped
``torchvision``        3-D patch kernel, ``features.I.J.attn.*``       none (torchvision's swin3d)
``timm``               anything else in timm's key names               none
=====================  ==============================================  ==============================

Fine-tuned MAE checkpoints are timm state dicts. VideoMAE pre-training keys also carry ``q_bias``
/ ``v_bias``; every format goes through the same bias fusion: ``qkv.bias = cat(q, 0, v)`` (a key
bias adds the same amount to every logit of a query, so zero is exact). Not for a model that has
``q_bias`` / ``v_bias`` itself (timm's EVA, EVA-02 tiny/small): its checkpoints keep them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from adaptcli.errors import AdaptError

#: Wrappers training scripts put around the state dict, looked up in this order.
WRAPPER_KEYS = ("model", "state_dict", "module", "model_state")
#: Prefixes that wrappers (DDP, VideoMAE's ``backbone``) add to every key.
KEY_PREFIXES = ("module.", "backbone.")

_QV_BIAS = re.compile(r"^(.*\.attn)\.(q_bias|v_bias)$")
_SWIN_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.(.*)$")
_SWIN_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.(.*)$")
#: The official Video Swin's ``Mlp`` names its layers; torchvision's ``MLP`` is a Sequential.
_SWIN_MLP = {"mlp.fc1.": "mlp.0.", "mlp.fc2.": "mlp.3."}
PATCH_KERNEL = "patch_embed.proj.weight"


def unwrap(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """The tensors of a state dict, out of ``model`` / ``state_dict`` / ``module`` wrappers."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        if any(isinstance(v, torch.Tensor) for v in obj.values()) and not any(k in obj for k in WRAPPER_KEYS):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        found = ", ".join(list(obj)[:6]) if isinstance(obj, Mapping) else type(obj).__name__
        raise AdaptError(f"{path}: no state dict of tensors found (top level holds: {found})")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in KEY_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def detect_format(state: Mapping[str, torch.Tensor]) -> str:
    """One of ``video-swin``, ``torchvision``, ``videomae-pretrain``, ``mae-pretrain``,
    ``videomae-finetune``, ``timm``."""
    keys = list(state)
    kernel = state.get(PATCH_KERNEL, state.get("backbone." + PATCH_KERNEL))
    if kernel is not None and kernel.ndim == 5:
        if any(_SWIN_BLOCK.match(k.removeprefix("backbone.")) for k in keys):
            return "video-swin"
        if any(k.startswith("features.") and ".attn.relative_position_bias_table" in k for k in keys):
            return "torchvision"
    if any(k.startswith("encoder.") for k in keys) and any(k.startswith("encoder.blocks.") for k in keys):
        return "videomae-pretrain"
    if "mask_token" in state or any(k.startswith("decoder_") for k in keys):
        return "mae-pretrain"
    if any(_QV_BIAS.match(k) for k in keys):
        return "videomae-finetune"
    return "timm"


def model_has_qv_bias(model: Any) -> bool:
    """Whether the model keeps ``attn.q_bias`` / ``v_bias`` itself (timm's EVA): then a checkpoint's are its own."""
    return any(_QV_BIAS.match(name) for name, _ in model.named_parameters())


def to_timm_keys(state: Mapping[str, torch.Tensor], fmt: str,
                 fuse_qv: bool = True) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """``(state in timm names, dropped pre-training keys, notes)`` for a detected format; ``fuse_qv=False``
    keeps ``q_bias``/``v_bias`` for a model that has them (EVA)."""
    state = dict(state)
    dropped: list[str] = []
    notes: list[str] = []
    if fmt == "video-swin":
        state, dropped = video_swin_to_torchvision(state)
        notes.append(f"official Video Swin keys renamed to torchvision's swin3d; dropped {len(dropped)} "
                     "keys outside the backbone (cls_head)")
        return state, dropped, notes
    if fmt == "videomae-pretrain":
        dropped = [k for k in state if not k.startswith("encoder.")]
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    elif fmt == "mae-pretrain":
        dropped = [k for k in state if k == "mask_token" or k.startswith("decoder_")]
        state = {k: v for k, v in state.items() if k not in dropped}
    if dropped:
        notes.append(f"dropped {len(dropped)} pre-training keys (decoder, mask token)")
    fused = fuse_qv_bias(state) if fuse_qv else 0
    if fused:
        notes.append(f"fused q_bias/v_bias into qkv.bias (key bias zero) in {fused} blocks")
    return state, dropped, notes


def fuse_qv_bias(state: dict[str, torch.Tensor]) -> int:
    """In place: ``attn.q_bias`` + ``attn.v_bias`` -> ``attn.qkv.bias = cat(q, 0, v)``. Returns the count."""
    owners = sorted({m.group(1) for k in state if (m := _QV_BIAS.match(k))})
    for owner in owners:
        q = state.pop(f"{owner}.q_bias", None)
        v = state.pop(f"{owner}.v_bias", None)
        if q is None or v is None:
            raise AdaptError(f"checkpoint has only one of {owner}.q_bias / {owner}.v_bias")
        if f"{owner}.qkv.bias" in state:
            raise AdaptError(f"checkpoint has both {owner}.qkv.bias and q_bias/v_bias")
        state[f"{owner}.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    return len(owners)


def video_swin_to_torchvision(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The official Video Swin (mmaction ``backbone.*``) keys in torchvision's ``swin3d`` names.

    ``layers.I.blocks.J.X`` -> ``features.{2I}.J.X`` and ``layers.I.downsample.X`` ->
    ``features.{2I+1}.X`` (torchvision interleaves stages and patch merging in one Sequential), the
    MLP's ``fc1`` / ``fc2`` -> ``0`` / ``3``; ``patch_embed.*`` and ``norm.*`` keep their names.
    Keys outside the backbone (``cls_head.*``) are returned as dropped.
    """
    prefixed = any(k.startswith("backbone.") for k in state)
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        if prefixed and not key.startswith("backbone."):
            dropped.append(key)
            continue
        name = key.removeprefix("backbone.")
        if block := _SWIN_BLOCK.match(name):
            rest = block.group(3)
            for old, new in _SWIN_MLP.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
            name = f"features.{2 * int(block.group(1))}.{block.group(2)}.{rest}"
        elif down := _SWIN_DOWNSAMPLE.match(name):
            name = f"features.{2 * int(down.group(1)) + 1}.{down.group(2)}"
        out[name] = value
    return out, dropped
