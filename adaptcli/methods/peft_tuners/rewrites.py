"""PiSSA and OLoRA (peft's ``init_lora_weights``: ``pissa``, ``pissa_niter_K``, ``olora``) on the user's own weights.

Both start the adapter from a factorisation of each target weight, ``W = W_res + s B0 A0``, and peft rewrites
the base layer to ``W_res`` so the model starts unchanged (PiSSA, Meng et al., NeurIPS 2024; OLoRA, Buyukakyuz,
2024). A run that kept ``W_res`` would save a backbone that is not the user's, and an adapter that only fits it.
So here the base layer gets the user's ``W`` back, bit for bit, and the initial factors stay with the adapter as
frozen buffers (``init_offset.A``, ``init_offset.B``) whose product is subtracted from the layer's output:
``W x + s B A drop(x) - s B0 A0 x``, which is PiSSA's ``W_res x + s B A drop(x)`` (the same gradients), with
``W`` untouched. Merging folds ``s (B A - B0 A0)`` into ``W``; peft's folder holds the same update as a plain
LoRA of rank 2r, ``[A; A0]`` and ``[B, -B0]``, peft's own conversion (``save_pretrained``'s
``path_initial_model_for_weight_conversion``, ``LoraModel.subtract_mutated_init``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptcli.errors import ConfigError

OFFSET = "init_offset"  # the child of each peft LoRA layer that holds B0 and A0 (no "lora_": peft leaves it alone)
ADAPTER = "default"


def rewrites_base(config: Any) -> bool:
    """Whether the peft ``config`` starts LoRA from a factorisation that peft subtracts from the base weights."""
    init = getattr(config, "init_lora_weights", None)
    return isinstance(init, str) and (init.lower().startswith("pissa") or init.lower() == "olora")


def check_rewriting_config(config: Any) -> None:
    """PiSSA/OLoRA options this module cannot keep exact: one line each."""
    if getattr(config, "use_dora", False):
        raise ConfigError(f"method.peft_config: init_lora_weights={config.init_lora_weights} with use_dora: DoRA's "
                          "magnitudes are computed on peft's rewritten weights, which adaptcli does not keep; "
                          "drop use_dora or the init")
    if getattr(config, "use_rslora", False) and (config.rank_pattern or config.alpha_pattern):
        raise ConfigError("method.peft_config: use_rslora with rank_pattern or alpha_pattern cannot be converted "
                          "to a plain LoRA for export (peft refuses it too); drop one of them")


class InitialFactors(nn.Module):
    """``B0`` and ``A0``, the adapter's initial factors, as frozen buffers saved with the adapter."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.register_buffer("A", a.detach().clone())
        self.register_buffer("B", b.detach().clone())

    def delta(self, scaling: float) -> torch.Tensor:
        """``s B0 A0``: what peft subtracted from the base weight."""
        return self.B @ self.A * scaling


def _subtract_initial(layer: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of a peft LoRA layer: minus ``s B0 A0 x`` (peft's ``W_res x`` from the user's ``W x``)."""
    if getattr(layer, "disable_adapters", False):
        return output
    factors: InitialFactors = getattr(layer, OFFSET)
    x = args[0].to(factors.A.dtype)
    return output - (x @ factors.A.T @ factors.B.T * layer.scaling[ADAPTER]).to(output.dtype)


def target_weights(model: nn.Module, config: Any) -> dict[str, torch.Tensor]:
    """A copy of the weight of every Linear ``config`` targets (before peft rewrites them), by module name."""
    from peft.tuners.tuners_utils import check_target_module_exists

    return {name: module.weight.detach().clone() for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and check_target_module_exists(config, name)}


def keep_original(model: nn.Module, layers: list[tuple[str, nn.Module]], originals: dict[str, torch.Tensor]) -> None:
    """After peft's injection: each base weight back to the user's, the initial factors kept and subtracted."""
    for name, layer in layers:
        if name not in originals or ADAPTER not in getattr(layer, "lora_A", {}):
            raise ConfigError(f"PiSSA/OLoRA start from a Linear's weights; {name} is a {type(layer).__name__}: "
                              "target Linear layers only")
        with torch.no_grad():
            layer.get_base_layer().weight.copy_(originals[name])
        layer.add_module(OFFSET, InitialFactors(layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight))
        layer.register_forward_hook(_subtract_initial)


@torch.no_grad()
def fold_offset(layer: nn.Module) -> None:
    """Before peft merges ``layer``: subtract ``s B0 A0`` from its base weight (nothing without an offset)."""
    factors = getattr(layer, OFFSET, None)
    if factors is None:
        return
    weight = layer.get_base_layer().weight
    weight.sub_(factors.delta(layer.scaling[ADAPTER]).to(weight))
    delattr(layer, OFFSET)


def offset_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The initial factors among an adapter state's tensors."""
    return {key: value for key, value in state.items() if f".{OFFSET}." in f".{key}"}


def as_plain_lora(config: Any) -> Any:
    """The peft config of the converted adapter: rank 2r, the same scaling, a plain LoRA init (what peft's
    ``save_pretrained`` writes with ``path_initial_model_for_weight_conversion``)."""
    config.init_lora_weights = True
    config.r *= 2
    config.lora_alpha *= 2 ** 0.5 if config.use_rslora else 2  # rsLoRA scales by alpha / sqrt(r)
    if config.rank_pattern:
        config.rank_pattern = {key: 2 * value for key, value in config.rank_pattern.items()}
    if config.alpha_pattern:
        config.alpha_pattern = {key: 2 * value for key, value in config.alpha_pattern.items()}
    return config


def convert_state(wrapped: Any, saved: dict[str, torch.Tensor], offsets: dict[str, torch.Tensor],
                  prefix: str) -> dict[str, torch.Tensor]:
    """peft's saved state of a PiSSA/OLoRA adapter as a plain LoRA on the original weights, by peft's own
    ``subtract_mutated_init``: the initial factors become an adapter of ``wrapped`` (a PeftModel) first."""
    import copy

    initial = "initial"
    config = copy.deepcopy(wrapped.peft_config[ADAPTER])
    config.init_lora_weights = True
    wrapped.add_adapter(initial, config, autocast_adapter_dtype=False)  # float32 already (torch < 2.7: see LOAD_KWARGS)
    try:
        state = {}
        for key, value in offsets.items():
            layer, part = key.split(f".{OFFSET}.")
            state[f"{prefix}{layer}.lora_{part}.{initial}.weight"] = value
        unexpected = wrapped.load_state_dict(state, strict=False).unexpected_keys
        if unexpected:
            raise ConfigError(f"cannot place the initial factor {unexpected[0]} in peft's model")
        # peft's conversion returns the LoRA factors only: the modules saved whole stay as they were
        return {**saved, **wrapped.base_model.subtract_mutated_init(saved, initial, {})}
    finally:
        wrapped.delete_adapter(initial)


__all__ = ["InitialFactors", "OFFSET", "as_plain_lora", "check_rewriting_config", "convert_state", "fold_offset",
           "keep_original", "offset_keys", "rewrites_base", "target_weights"]
