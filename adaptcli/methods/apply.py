"""The one entry point that adapts a model (:func:`apply_method`), and what a run saves or merges."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import importlib

from adaptcli.methods.base import AdaptInfo, Method, freeze_all, hold_fixed, new_parameter_names
from adaptcli.methods.head import add_head_norm, fold_head_norms
from adaptcli.methods.registry import merge_refusal, method_spec
from adaptcli.models.blocks import head_modules


def get_method(name: str) -> Method:
    """The method's code, imported from its folder on first use."""
    spec = method_spec(name)
    module_name, class_name = spec.implementation.split(":")
    return getattr(importlib.import_module(module_name), class_name)(spec)


def apply_method(model: nn.Module, name: str, options: Any = None, head_norm: str = "none",
                 num_frames: int | None = None) -> AdaptInfo:
    """Inject method ``name`` into ``model`` in place and freeze everything it does not train.

    ``head_norm="bn"`` puts ``BatchNorm1d(affine=False)`` before the classifier (AdaptFormer's
    scripts do so for every method); a probe head already has it. ``num_frames`` is the run's frames per
    clip (``model.num_frames``), for methods with per-frame parameters (ZeroI2V's ``temporal_embedding``).

    Trainable afterwards: the method's own parameters, the classifier and ``fc_norm`` (when it has
    weights); for ``full``, everything. Returns what was done (:class:`AdaptInfo`): the caller keeps it
    next to the model, since saving, counting and merging need it.
    """
    method = get_method(name)
    method.num_frames = num_frames
    if options is None:
        options = method.spec.options()
    method.check_model(model)
    before = {id(p) for p in model.parameters()}
    added = method.inject(model, options)
    if head_norm == "bn":
        add_head_norm(model)
    elif head_norm != "none":
        raise ValueError(f"head norm must be 'bn' or 'none', got {head_norm!r}")
    heads = [n for n, _ in head_modules(model)]
    method_params = new_parameter_names(model, before)
    method_params += [n for n in method.existing_parameters(model)
                      if not _under(n, heads) and n not in method_params]

    freeze_all(model)
    owned = [*added, *heads]
    kept_frozen = set(method.kept_frozen(model))
    for param_name, param in model.named_parameters():
        if method.spec.trains_backbone or param_name in method_params or (
                _under(param_name, heads) and param_name not in kept_frozen):
            param.requires_grad_(True)
    params = dict(model.named_parameters())
    fixed = {n: hold_fixed(params[n], part) for n, part in method.fixed_parts(model).items() if params[n].requires_grad}
    return AdaptInfo(
        method=name,
        options=options,
        mergeable=merge_refusal(name, options) is None and method.is_mergeable(model),
        owned_prefixes=owned,
        method_param_names=method_params,
        fixed_elements=fixed,
    )


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def trainable_state_dict(model: nn.Module, info: AdaptInfo) -> dict[str, torch.Tensor]:
    """What a run must save: trainable parameters plus the buffers of method and head modules."""
    trains_backbone = method_spec(info.method).trains_backbone
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    state = model.state_dict()
    return {
        key: value
        for key, value in state.items()
        if key in trainable or _under(key, info.owned_prefixes) or trains_backbone
    }


def adapter_state_dict(model: nn.Module, info: AdaptInfo) -> dict[str, torch.Tensor]:
    """What a task adds to its backbone: :func:`trainable_state_dict` without frozen parameters.

    ARC keeps the LayerNorm it wraps as ``base_layer`` inside its own module; those weights belong
    to the backbone, so an adapter file leaves them out. Buffers (the probe's BatchNorm statistics)
    stay in.
    """
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k: v for k, v in trainable_state_dict(model, info).items() if k not in frozen}


def frozen_backbone_state(model: nn.Module, info: AdaptInfo) -> dict[str, torch.Tensor]:
    """Every backbone weight of an adapted model as it is now, in the plain backbone's key names.

    That is the frozen weights plus any backbone weight the method trains in place (BitFit's
    biases: saved before training, they are the original values). Loadable into the un-adapted
    backbone (``load_checkpoint``) and, through :func:`plain_key`, back into the adapted model.
    """
    params = {n: p for n, p in model.named_parameters()}
    state = {}
    for key, value in model.state_dict().items():
        param = params.get(key)
        if param is not None:  # trained parameters of method and head modules are not the backbone's
            keep = not param.requires_grad or not _under(key, info.owned_prefixes)
        else:  # a buffer: the backbone's unless it sits in a method or head module
            keep = not _under(key, info.owned_prefixes)
        if keep:
            state[plain_key(key)] = value
    return state


def plain_key(key: str) -> str:
    """The backbone's own name for a key of an adapted model (ARC wraps norms as ``base_layer``)."""
    return key.replace(".base_layer.", ".")


def merge_method(model: nn.Module, info: AdaptInfo) -> nn.Module:
    """Fold the method ``info`` describes into the backbone in place; the model then has the plain
    architecture (and ``info`` no longer applies to it)."""
    get_method(info.method).merge(model)
    fold_head_norms(model)
    return model


__all__ = [
    "AdaptInfo",
    "apply_method",
    "adapter_state_dict",
    "frozen_backbone_state",
    "get_method",
    "merge_method",
    "plain_key",
    "trainable_state_dict",
]
