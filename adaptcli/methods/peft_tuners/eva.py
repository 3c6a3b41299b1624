"""EVA (Paischer et al., "One Initialization to Rule them All: Fine-tuning via Explained Variance Adaptation",
2024, arXiv 2410.07170) through peft: each LoRA A starts from the top right-singular vectors of its layer's
inputs over the training stream (peft's ``initialize_lora_eva_weights``, incremental SVD until the components
converge), B at zero, so the model starts unchanged.

peft wants a ``PeftModel``; adaptcli injects into the timm model itself, so :class:`PeftView` gives peft the
three things it reads (``peft_config``, ``active_adapters``, ``disable_adapter``) around it. While B is zero the
adapted model computes the backbone's function, so "adapters disabled" needs no switch.

With ``eva_config.rho`` > 1 (peft's default 2) EVA also redistributes the ranks: each layer keeps between 0 and
``rho * r`` components, those of the largest explained variance over all layers, the total staying that of rank
``r`` everywhere. peft writes the ranks it chose into the LoRA config (``rank_pattern``; ``alpha_pattern`` with
``adjust_scaling_factors``; ``target_modules`` less the layers that got rank 0); :func:`record_shapes` copies
them into the run's ``method.peft_config`` before the run's configuration is recorded, so that configuration
alone rebuilds the adapter's shapes (``--resume``, ``eval``, ``predict``, ``export`` and its peft folder,
``adaptcli.load``), and :func:`recorded_by_eva` lets a ``--resume`` with the options the run started from
continue it (from its checkpoint, without a second data pass).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


ADAPTER = "default"


def wants_eva(config: Any) -> bool:
    """Whether a peft config asks for EVA's initialisation."""
    return getattr(config, "init_lora_weights", None) == "eva"


#: The LoRA options EVA's rank redistribution sets (peft's ``_load_eva_state_dict``), recorded in the run.
RECORDED = ("rank_pattern", "alpha_pattern", "target_modules")


def eva_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with peft's default ``eva_config`` filled in where absent (peft's config class warns about it)."""
    if options.get("init_lora_weights") != "eva" or options.get("eva_config") is not None:
        return options
    from peft import EvaConfig

    return {**options, "eva_config": EvaConfig()}


def _plain(value: Any) -> Any:
    """A peft config value as the run's YAML holds it (sets as sorted lists, floats as they are)."""
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in sorted(value.items())}
    return value


def lora_ranks(model: nn.Module) -> dict[str, int]:
    """Each LoRA layer of ``model`` by name: its rank."""
    from peft.tuners.lora.layer import LoraLayer

    return {name: module.r[ADAPTER] for name, module in model.named_modules()
            if isinstance(module, LoraLayer) and ADAPTER in module.r}


def record_shapes(model: nn.Module, options: dict[str, Any], layers_before: int) -> dict[str, Any]:
    """``options`` (the run's ``method.peft_config``) with the ranks and alphas peft's EVA left in ``model``'s
    LoRA config where they differ from what the options gave, and its ``target_modules`` where EVA removed a
    layer (rank 0; ``layers_before``: how many LoRA layers the pass started with)."""
    config = model.peft_config[ADAPTER]
    recorded = dict(options)
    for key in ("rank_pattern", "alpha_pattern"):
        value = _plain(getattr(config, key))
        if value != _plain(options.get(key, {})):
            recorded[key] = value
    if len(lora_ranks(model)) < layers_before:
        recorded["target_modules"] = _plain(config.target_modules)
    return recorded


def recorded_by_eva(recorded: dict[str, Any], given: dict[str, Any]) -> bool:
    """Whether a run's ``recorded`` peft options are the EVA options ``given`` plus what :func:`record_shapes`
    wrote (the ranks its data pass chose)."""
    def rest(options: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in options.items() if key not in RECORDED}

    return (given.get("init_lora_weights") == "eva" and recorded != given and rest(recorded) == rest(given)
            and any(key in recorded for key in RECORDED))


class PeftView(nn.Module):
    """What peft's EVA reads of a ``PeftModel``, around a model adaptcli injected peft's LoRA into."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.base_model = nn.Module()
        self.base_model.model = model  # peft strips the "base_model.model." prefix PeftModel's names carry
        self.peft_config = model.peft_config
        self.active_adapters = [ADAPTER]

    def disable_adapter(self):
        return contextlib.nullcontext()  # B is zero: the adapted model computes the backbone's function

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.base_model.model(inputs)


def _forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model(inputs)


@torch.no_grad()
def initialise_eva(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """peft's EVA initialisation of every LoRA A of ``model`` from ``batches``; returns how many layers it
    started from (a layer EVA gives rank 0 goes back to its plain base layer)."""
    from peft.tuners.lora.eva import initialize_lora_eva_weights

    layers = len(lora_ranks(model))
    training = model.training
    model.eval()  # no dropout: the layer inputs as the backbone computes them
    try:
        initialize_lora_eva_weights(PeftView(model), dataloader=batches, forward_fn=_forward,
                                    prepare_model_inputs_fn=None, prepare_layer_inputs_fn=None,
                                    show_progress_bar=False)
    finally:
        model.train(training)
    return layers


__all__ = ["RECORDED", "PeftView", "eva_options", "initialise_eva", "lora_ranks", "record_shapes", "recorded_by_eva", "wants_eva"]
