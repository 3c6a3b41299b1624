"""Recognise a checkpoint's layout from its keys and bring it to timm's key names.

=====================  ==============================================  ==============================
format                 recognised by                                   conversion
=====================  ==============================================  ==============================
``videomae-pretrain``  keys under ``encoder.`` (and ``decoder.``)      keep ``encoder.*`` stripped
``mae-pretrain``       ``mask_token`` or ``decoder_*`` keys            drop decoder and mask token
``videomae-finetune``  ``blocks.N.attn.q_bias`` / ``v_bias``           fuse into ``qkv.bias``
``timm``               anything else in timm's key names               none
=====================  ==============================================  ==============================

Fine-tuned MAE checkpoints are timm state dicts. VideoMAE pre-training keys also carry ``q_bias``
/ ``v_bias``; every format goes through the same bias fusion: ``qkv.bias = cat(q, 0, v)`` (a key
bias adds the same amount to every logit of a query, so zero is exact).
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
    """One of ``videomae-pretrain``, ``mae-pretrain``, ``videomae-finetune``, ``timm``."""
    keys = list(state)
    if any(k.startswith("encoder.") for k in keys) and any(k.startswith("encoder.blocks.") for k in keys):
        return "videomae-pretrain"
    if "mask_token" in state or any(k.startswith("decoder_") for k in keys):
        return "mae-pretrain"
    if any(_QV_BIAS.match(k) for k in keys):
        return "videomae-finetune"
    return "timm"


def to_timm_keys(state: Mapping[str, torch.Tensor], fmt: str) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """``(state in timm names, dropped pre-training keys, notes)`` for a detected format."""
    state = dict(state)
    dropped: list[str] = []
    notes: list[str] = []
    if fmt == "videomae-pretrain":
        dropped = [k for k in state if not k.startswith("encoder.")]
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    elif fmt == "mae-pretrain":
        dropped = [k for k in state if k == "mask_token" or k.startswith("decoder_")]
        state = {k: v for k, v in state.items() if k not in dropped}
    if dropped:
        notes.append(f"dropped {len(dropped)} pre-training keys (decoder, mask token)")
    fused = fuse_qv_bias(state)
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
