"""``adaptcli.load``: one call from an exported file to a ready model."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from adaptcli.deploy.header import read_header
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError


def load(path: str | Path, backbone: str | Path | None = None) -> nn.Module:
    """The model of an ``adaptcli export`` file, in eval mode.

    * merged: the plain backbone architecture (``timm.create_model``) with the folded weights;
    * full: backbone + method rebuilt from the stored configuration, all weights from the file;
    * adapter-only: needs ``backbone=FILE`` (any checkpoint layout ``--checkpoint`` accepts).

    The file's header (classes, input size, mean, std, ...) is :func:`~adaptcli.deploy.read_header`'s.
    """
    from adaptcli.deploy.adapter import AdapterSwitcher
    from adaptcli.deploy.build import model_from_state
    from adaptcli.io import read_safetensors

    meta = read_header(path)
    if ExportMode.from_header(meta["format"]) is ExportMode.ADAPTER_ONLY:
        if backbone is None:
            raise AdaptError(
                f"{path} holds only a task's adapter; pass the backbone weights: adaptcli.load(path, backbone=FILE)"
            )
        return AdapterSwitcher(backbone).load(path)
    if backbone is not None:
        raise AdaptError(f"{path} is a self-contained {meta['format']} file; drop backbone=")
    tensors, _ = read_safetensors(path)
    try:
        model = model_from_state(meta, tensors)
    except AdaptError as exc:
        raise AdaptError(f"{path}: {exc}") from exc
    return model.eval()
