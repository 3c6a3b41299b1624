"""EVA (Paischer et al., "One Initialization to Rule them All: Fine-tuning via Explained Variance Adaptation",
2024, arXiv 2410.07170) through peft: each LoRA A starts from the top right-singular vectors of its layer's
inputs over the training stream (peft's ``initialize_lora_eva_weights``, incremental SVD until the components
converge), B at zero, so the model starts unchanged.

peft wants a ``PeftModel``; adaptcli injects into the timm model itself, so :class:`PeftView` gives peft the
three things it reads (``peft_config``, ``active_adapters``, ``disable_adapter``) around it. While B is zero the
adapted model computes the backbone's function, so "adapters disabled" needs no switch.

Only ``eva_config.rho: 1`` is taken: with rho > 1 EVA redistributes ranks between layers after the data pass,
which changes the shapes the run's configuration (and ``--resume``'s check of it) records before training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from adaptcli.errors import ConfigError

ADAPTER = "default"


def wants_eva(config: Any) -> bool:
    """Whether a peft config asks for EVA's initialisation."""
    return getattr(config, "init_lora_weights", None) == "eva"


def check_eva_config(config: Any) -> None:
    """rho must be 1 (no rank redistribution: see the module's docstring); ``config``: a LoraConfig or its
    options (no ``eva_config``: peft's default, rho 2)."""
    from peft import EvaConfig

    eva = config.get("eva_config") if isinstance(config, dict) else getattr(config, "eva_config", None)
    rho = getattr(eva if eva is not None else EvaConfig(), "rho", 1.0)
    if rho != 1:
        default = " (peft's default without eva_config)" if eva is None else ""
        raise ConfigError(f"method.peft_config.eva_config.rho={rho:g}{default}: EVA's rank redistribution changes each layer's "
                          "rank after the run's configuration is fixed, which adaptcli cannot record; set "
                          "method.peft_config.eva_config={rho: 1}")


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
    """peft's EVA initialisation of every LoRA A of ``model`` from ``batches``; returns how many layers."""
    from peft.tuners.lora.eva import initialize_lora_eva_weights
    from peft.tuners.lora.layer import LoraLayer

    training = model.training
    model.eval()  # no dropout: the layer inputs as the backbone computes them
    try:
        initialize_lora_eva_weights(PeftView(model), dataloader=batches, forward_fn=_forward,
                                    prepare_model_inputs_fn=None, prepare_layer_inputs_fn=None,
                                    show_progress_bar=False)
    finally:
        model.train(training)
    return sum(isinstance(module, LoraLayer) for module in model.modules())


__all__ = ["PeftView", "check_eva_config", "initialise_eva", "wants_eva"]
