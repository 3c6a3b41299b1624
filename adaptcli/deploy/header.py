"""The safetensors header of an exported file: what a deployer needs, as string values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from adaptcli.config import RunConfig
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError


def create_kwargs(config: RunConfig, num_classes: int) -> dict[str, Any]:
    """Keyword arguments of ``timm.create_model(config.model.name, **kwargs)`` for the plain model."""
    from adaptcli.models.build import model_size_kwargs

    return {"num_classes": num_classes, **model_size_kwargs(config.model)}


def export_metadata(mode: ExportMode, model: nn.Module, config: RunConfig, info: dict[str, Any]) -> dict[str, Any]:
    """Header fields of an export (``save_tensors`` JSON-encodes the non-strings)."""
    from importlib.metadata import version
    from adaptcli.runs.build import is_video_model, normalisation

    norm = normalisation(model)
    video = is_video_model(model)
    size = config.model.img_size
    meta: dict[str, Any] = {
        "format": mode.header_format,
        "backbone": config.model.name,
        "method": config.method,
        "modality": "video" if video else "image",
        "classes": list(info["classes"]),
        "num_classes": int(info["num_classes"]),
        "input_size": [3, size, size],
        "mean": list(norm.mean),
        "std": list(norm.std),
        "create_kwargs": create_kwargs(config, int(info["num_classes"])),
        "config": config.to_dict(),
        "adaptcli_version": version("adaptcli"),
    }
    if video:
        meta["num_frames"] = config.model.num_frames
    return meta


def read_header(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported file, JSON values decoded (only the header is read).

    What a deployer needs besides the model: ``classes``, ``input_size``, ``mean``, ``std``, ...
    """
    from adaptcli.io import read_safetensors

    path = Path(path)
    _, raw = read_safetensors(path, tensors=False)
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    if ExportMode.from_header(meta.get("format")) is None:
        found = meta.get("format", "no adaptcli format field")
        raise AdaptError(
            f"{path} is not an adaptcli export ({found}); write one with 'adaptcli export --run RUN ...'"
        )
    return meta
