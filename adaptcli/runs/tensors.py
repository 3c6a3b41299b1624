"""Tensors into an adapted model: strict key and shape checks, plain-to-adapted key names."""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.errors import AdaptError
from adaptcli.methods.apply import plain_key


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Copy ``tensors`` into ``model``; every key must exist with the same shape."""
    state = model.state_dict()
    unknown = [k for k in tensors if k not in state]
    if unknown:
        raise AdaptError(f"{what} has tensors the model lacks (first: {unknown[0]}); was it made for another model or method?")
    for key, value in tensors.items():
        if state[key].shape != value.shape:
            raise AdaptError(
                f"{what}: tensor {key} has shape {tuple(value.shape)}, the model expects {tuple(state[key].shape)}"
            )
    with torch.no_grad():
        for key, value in tensors.items():
            state[key].copy_(value)


def adapted_keys(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename plain backbone keys to the adapted model's (``norm1.weight`` -> ``norm1.base_layer.weight``)."""
    # A wrapped layer's backbone weights live in base_layer (ARC's own bias may share the plain name).
    wrapped = {plain_key(k): k for k in model.state_dict() if ".base_layer." in k}
    return {wrapped.get(k, k): v for k, v in tensors.items()}
