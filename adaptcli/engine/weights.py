"""Trainable tensors as safetensors, with the run's configuration in the header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.errors import AdaptError
from adaptcli.io import atomic_path


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write ``tensors`` (contiguous CPU copies) with string metadata; values are JSON-encoded."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=header)


def read_safetensors(path: str | Path, *, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (unless ``tensors=False``: the header only) and raw string metadata of a file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise AdaptError(f"file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            loaded = {key: handle.get_tensor(key) for key in handle.keys()} if tensors else {}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise AdaptError(f"{path} is not a readable safetensors file ({exc})") from exc
    return loaded, metadata


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and the raw string metadata of a safetensors file."""
    return read_safetensors(path)


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
    from adaptcli.methods import plain_key

    # A wrapped layer's backbone weights live in base_layer (ARC's own bias may share the plain name).
    wrapped = {plain_key(k): k for k in model.state_dict() if ".base_layer." in k}
    return {wrapped.get(k, k): v for k, v in tensors.items()}
