"""``adaptcli.load``: one call from an export to a ready model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError


def load(path: str | Path, backbone: str | Path | None = None) -> nn.Module:
    """The model of an ``adaptcli export``, in eval mode: whatever the format registry opens
    (:func:`adaptcli.deploy.formats.open_export`) and PyTorch runs.

    * a merged ``.safetensors`` file: the plain backbone architecture (``timm.create_model``) with the folded weights;
    * a full one: backbone + method rebuilt from the stored configuration, all weights from the file;
    * an adapter-only file or a peft folder: needs ``backbone=FILE`` (any checkpoint layout ``--checkpoint`` accepts);
    * a timm or hub folder: what ``timm.create_model("local-dir:DIR", pretrained=True)`` builds;
    * an adapter-only hub folder: needs ``backbone=FILE``, the file whose SHA-256 the folder records;
    * ``hf-hub:USER/NAME``: any hub folder on the Hugging Face Hub, read through huggingface_hub's local cache
      (downloaded into it when online; ``HF_HUB_OFFLINE=1``: the cache only).

    A file's header (classes, input size, mean, std, ...) is :func:`~adaptcli.deploy.read_header`'s.
    """
    from adaptcli.deploy.formats import open_export

    opened = open_export(Path(path), backbone=Path(backbone) if backbone is not None else None)
    if opened.runtime != "torch":
        raise AdaptError(f"{opened.source} runs in {opened.runtime}, not PyTorch: load the .safetensors export "
                         "of the run instead")
    return opened.load()


def load_safetensors(path: Path, meta: dict[str, Any], backbone: Path | None = None) -> nn.Module:
    """The model of an adaptcli ``.safetensors`` file whose header is ``meta`` (adapter-only: on ``backbone``)."""
    from adaptcli.deploy.adapter import AdapterSwitcher
    from adaptcli.deploy.build import model_from_state
    from adaptcli.io import read_safetensors

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
