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
``adjust_scaling_factors``) and puts a layer that got rank 0 back to its base layer; :func:`record_shapes` copies
the patterns into the run's ``method.peft_config``, and the layers left plain as ``exclude_modules`` (the user's
``target_modules`` stay as given, so a resume that changes them is a changed option), before the run's
configuration is recorded, so that configuration alone rebuilds the adapter's shapes (``--resume``, ``eval``, ``predict``, ``export`` and its peft folder,
``adaptcli.load``), and :func:`as_started` lets a ``--resume`` with the options the run started from
continue it (from its checkpoint, without a second data pass).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


ADAPTER = "default"


def wants_eva(config: Any) -> bool:
    """Whether a peft config asks for EVA's initialisation."""
    return getattr(config, "init_lora_weights", None) == "eva"


#: The LoRA options :func:`record_shapes` sets from EVA's rank redistribution (peft's ``_load_eva_state_dict``).
RECORDED = ("rank_pattern", "alpha_pattern", "exclude_modules")


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


def _excluding(given: Any, plain: list[str]) -> list[str] | str:
    """The user's ``exclude_modules`` (``given``: none, a list of names, or a regular expression peft matches in
    full) extended by the layers ``plain``, in a form that starts with what the user gave."""
    if isinstance(given, str):
        return f"(?:{given})|" + "|".join(re.escape(name) for name in plain)
    given = list(given or [])
    return given + [name for name in plain if name not in given]


def _extends(recorded: Any, given: Any) -> bool:
    """Whether ``recorded`` is ``given`` or :func:`_excluding` of ``given`` and some layers."""
    if recorded == given:
        return True
    if isinstance(given, str):
        return isinstance(recorded, str) and recorded.startswith(f"(?:{given})|")
    given = list(given or [])
    return isinstance(recorded, list) and recorded[:len(given)] == given


def record_shapes(model: nn.Module, options: dict[str, Any], layers_before: Iterable[str]) -> dict[str, Any]:
    """``options`` (the run's ``method.peft_config``) with the ranks and alphas peft's EVA left in ``model``'s
    LoRA config where they differ from what the options gave, and the layers EVA left plain (rank 0; of
    ``layers_before``, the LoRA layers the pass started with) added to its ``exclude_modules``."""
    config = model.peft_config[ADAPTER]
    recorded = dict(options)
    for key in ("rank_pattern", "alpha_pattern"):
        value = _plain(getattr(config, key))
        if value != _plain(options.get(key, {})):
            recorded[key] = value
    plain = sorted(set(layers_before) - set(lora_ranks(model)))
    if plain:
        recorded["exclude_modules"] = _excluding(options.get("exclude_modules"), plain)
    return recorded


def as_started(recorded: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A run's ``recorded`` peft options with what :func:`record_shapes` wrote into them (the ranks its data pass
    chose, the layers it left plain) put back as the EVA options ``given`` have it: equal to ``given`` when the
    run started from them, else showing where they differ."""
    if given.get("init_lora_weights") != "eva":
        return recorded
    # exclude_modules that do not start with the user's own exclusions are a changed option: left to show
    put_back = [key for key in RECORDED
                if key != "exclude_modules" or _extends(recorded.get(key), given.get(key))]
    started = {key: value for key, value in recorded.items() if key not in put_back}
    started.update((key, given[key]) for key in put_back if key in given)
    return started


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


__all__ = ["RECORDED", "PeftView", "eva_options", "initialise_eva", "lora_ranks", "record_shapes", "as_started", "wants_eva"]
