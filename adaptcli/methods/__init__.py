"""The method registry and the one entry point that adapts a model: :func:`apply_method`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptcli.config import METHOD_OPTIONS
from adaptcli.errors import ConfigError
from adaptcli.methods.adaptformer import AdaptFormer
from adaptcli.methods.arc import Arc, ArcAttention
from adaptcli.methods.base import AdaptInfo, Method, freeze_all, new_parameter_names
from adaptcli.methods.linear import Full, Linear
from adaptcli.methods.vpt import VptDeep, VptShallow
from adaptcli.models.blocks import head_modules

METHODS: dict[str, Method] = {
    m.name: m for m in (AdaptFormer(), Arc(), ArcAttention(), VptShallow(), VptDeep(), Linear(), Full())
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method '{name}': choose one of {', '.join(METHODS)}") from None


def apply_method(model: nn.Module, name: str, options: Any = None) -> nn.Module:
    """Inject method ``name`` into ``model`` in place and freeze everything it does not train.

    Trainable afterwards: the method's own parameters, the classifier and ``fc_norm`` (when it has
    weights); for ``full``, everything. The result is recorded as ``model.adaptcli_info``.
    """
    method = get_method(name)
    if options is None:
        options = METHOD_OPTIONS[name]()
    method.check_model(model)
    before = {id(p) for p in model.parameters()}
    added = method.inject(model, options)
    method_params = new_parameter_names(model, before)
    heads = [n for n, _ in head_modules(model)]

    freeze_all(model)
    owned = [*added, *heads]
    for param_name, param in model.named_parameters():
        if method.trains_backbone or param_name in method_params or _under(param_name, heads):
            param.requires_grad_(True)
    model.adaptcli_info = AdaptInfo(
        method=name,
        options=options,
        mergeable=method.mergeable,
        owned_prefixes=owned,
        method_param_names=method_params,
    )
    return model


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def adapt_info(model: nn.Module) -> AdaptInfo:
    info = getattr(model, "adaptcli_info", None)
    if info is None:
        raise ValueError("model has not been adapted (call apply_method first)")
    return info


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a run must save: trainable parameters plus the buffers of method and head modules."""
    info = adapt_info(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    state = model.state_dict()
    return {
        key: value
        for key, value in state.items()
        if key in trainable or _under(key, info.owned_prefixes) or (info.method == "full")
    }


def merge_method(model: nn.Module) -> nn.Module:
    """Fold the method into the backbone in place; the model then has the plain architecture."""
    info = adapt_info(model)
    get_method(info.method).merge(model)
    del model.adaptcli_info
    return model


__all__ = [
    "METHODS",
    "AdaptInfo",
    "apply_method",
    "adapt_info",
    "get_method",
    "merge_method",
    "trainable_state_dict",
]
