"""LoRA+ (Hayou, Ghosh and Yu, ICML 2024, arXiv 2402.12354): the B factors of LoRA train at ``ratio`` x the lr of A.

The parameters that get the higher lr follow the official code (nikhil-ghosh-berkeley/loraplus, whose
``create_loraplus_optimizer`` peft copies in ``peft.optimizers``): every trainable tensor named ``lora_B``
and every one-dimensional one (biases, DoRA's magnitudes). peft's function builds its own optimiser whose
fixed lrs timm's scheduler would overwrite; here the same split is made inside adaptcli's parameter groups
(weight decay and layer decay kept) as timm's ``lr_scale``, which the scheduler multiplies in at every step.
"""

from __future__ import annotations

from torch import nn

from adaptcli.errors import ConfigError

#: The paper's rule of thumb for the ratio, lambda = 2^4 (Hayou et al., arXiv 2402.12354; the official code's
#: README leaves it to the paper).
PAPER_RATIO = 16.0


def gets_ratio(name: str, param: nn.Parameter) -> bool:
    """Whether LoRA+ trains ``param`` at ratio x lr (the official rule: a LoRA B factor or a 1-D tensor)."""
    return "lora_B" in name or param.ndim == 1


def check_loraplus(model: nn.Module, ratio: float | None, method: str) -> None:
    """``train.loraplus_ratio`` needs LoRA B factors to scale: a one-line refusal for a method without them."""
    if ratio is None:
        return
    if not any("lora_B" in name for name, p in model.named_parameters() if p.requires_grad):
        raise ConfigError(f"train.loraplus_ratio={ratio:g} scales the lr of LoRA's B factors, and method {method} "
                          "trains none; use lora, dora or a peft LoRA, or set train.loraplus_ratio=null")


def loraplus_groups(model: nn.Module, groups: list[dict], ratio: float) -> list[dict]:
    """``groups`` with the LoRA+ tensors of each moved into a copy whose ``lr_scale`` is ``ratio`` times its own
    (the copies after the originals, so the first group still reports the base lr)."""
    names = {id(p): name for name, p in model.named_parameters()}
    kept, faster = [], []
    for group in groups:
        fast = [p for p in group["params"] if gets_ratio(names[id(p)], p)]
        slow = [p for p in group["params"] if not gets_ratio(names[id(p)], p)]
        if slow:
            kept.append({**group, "params": slow})
        if fast:
            faster.append({**group, "params": fast, "lr_scale": group.get("lr_scale", 1.0) * ratio})
    return kept + faster


__all__ = ["PAPER_RATIO", "check_loraplus", "gets_ratio", "loraplus_groups"]
