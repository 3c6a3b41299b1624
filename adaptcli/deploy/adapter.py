"""Adapter files on a shared backbone: one set of backbone weights in memory, many tasks."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.config import header_config
from adaptcli.deploy.header import read_header
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError


def read_adapter(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and decoded header of an adapter-only file (refuses other exports)."""
    from adaptcli.io import read_safetensors

    meta = read_header(path)
    if ExportMode.from_header(meta["format"]) is not ExportMode.ADAPTER_ONLY:
        raise AdaptError(f"{path} is a {meta['format']} file, not an adapter file; load it with adaptcli.load(path)")
    tensors, _ = read_safetensors(path)
    return tensors, meta


def attach_adapter(backbone: nn.Module, adapter: str | Path) -> nn.Module:
    """A task model from a loaded plain ``backbone`` and an adapter file, in eval mode.

    The result shares every frozen backbone tensor with ``backbone`` (no copy): only the adapter's
    own tensors and the classifier are new. ``backbone`` itself is left unchanged, so it can take
    any number of adapters. The task models are for inference (their parameters are frozen).
    """
    from adaptcli.methods.apply import adapter_state_dict, apply_method
    from adaptcli.models.blocks import classifier, head_modules

    tensors, meta = read_adapter(adapter)
    config = header_config(meta)
    num_classes = int(meta["num_classes"])
    # Share the backbone's tensors, but give the copy its own head (methods re-initialise it in place).
    heads = [module for _, module in head_modules(backbone)]
    own = {id(t) for t in itertools.chain.from_iterable(h.parameters() for h in heads)}
    shared = {id(t): t for t in itertools.chain(backbone.parameters(), backbone.buffers()) if id(t) not in own}
    model = copy.deepcopy(backbone, memo=shared)
    head = classifier(model)
    if getattr(head, "out_features", num_classes) != num_classes:
        model.reset_classifier(num_classes)
    adapt = apply_method(model, config.method, config.method_options, head_norm=config.head.norm,
                         num_frames=config.model.num_frames)
    expected = set(adapter_state_dict(model, adapt))
    missing = sorted(expected - set(tensors))
    unknown = sorted(set(tensors) - set(model.state_dict()))
    if missing or unknown:
        first = (missing or unknown)[0]
        raise AdaptError(
            f"{adapter} does not fit this backbone ({len(missing)} tensors missing, {len(unknown)} unknown; "
            f"first: {first}); was it exported from a run on the same architecture?"
        )
    try:
        # assign: the adapter's tensors replace (never overwrite) what the copy shares.
        model.load_state_dict(tensors, strict=False, assign=True)
    except RuntimeError as exc:
        raise AdaptError(f"{adapter} does not fit this backbone: {str(exc).splitlines()[-1].strip()}") from exc
    model.requires_grad_(False)
    return model.eval()


class AdapterSwitcher:
    """Serve several tasks from one backbone file loaded once.

    >>> switcher = AdapterSwitcher("vit_b16.safetensors")
    >>> dtd = switcher.load("dtd.safetensors")      # backbone read from disk here, once
    >>> cifar = switcher.load("cifar.safetensors")  # same backbone tensors, other adapter

    Task models share the backbone's tensors, so each one costs only its adapter and classifier.
    """

    def __init__(self, backbone: str | Path):
        self.backbone_file = Path(backbone)
        if not self.backbone_file.is_file():
            raise AdaptError(f"backbone file not found: {self.backbone_file}")
        self._backbones: dict[str, nn.Module] = {}

    def backbone_for(self, meta: dict[str, Any]) -> nn.Module:
        """The loaded plain backbone for the architecture an adapter header names (built once)."""
        from adaptcli.deploy.build import backbone_with_checkpoint

        sizes = {k: v for k, v in meta["create_kwargs"].items() if k != "num_classes"}
        key = f"{meta['backbone']}:{sorted(sizes.items())}"
        if key not in self._backbones:
            self._backbones[key] = backbone_with_checkpoint(meta, self.backbone_file).eval()
        return self._backbones[key]

    def load(self, adapter: str | Path) -> nn.Module:
        """The task model of ``adapter`` on the shared backbone, in eval mode."""
        meta = read_header(adapter)
        return attach_adapter(self.backbone_for(meta), adapter)

    @property
    def loaded_backbones(self) -> int:
        return len(self._backbones)
