"""The LoRA family and any other tuner of Hugging Face ``peft``: options and registration.

``lora`` and ``dora`` are peft's LoRA (Hu et al., ICLR 2022) and DoRA (Liu et al., ICML 2024) with
this toolkit's defaults; ``peft`` takes any peft tuner by name and its options as peft spells them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Interval, Predicate

from adaptcli.methods.registry import MethodSpec, register


def distinct_parts(parts: list[str]) -> bool:
    """one to three distinct parts"""
    return 0 < len(parts) == len(set(parts))


@dataclass
class LoraOptions:
    """Low-rank update ``W + (alpha / r) B A`` of each target Linear (peft's ``LoraConfig``).

    ``qkv: split`` instead gives each part in ``split_targets`` of every block's fused ``qkv`` its own
    rank-r update of its output rows (Adapter+'s LoRA baseline adapts q and k so); ``target_modules``
    then stays ``[qkv]``.
    """

    r: Annotated[int, Ge(1)] = 8
    """The rank of the update."""
    alpha: Annotated[float, Gt(0)] = 8.0
    """The update is scaled by alpha / r."""
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0
    """Dropout on the update's input."""
    target_modules: list[str] = field(default_factory=lambda: ["qkv"])
    """Names of the Linear modules that get an update (peft's ``target_modules``)."""
    qkv: Literal["fused", "split"] = "fused"
    """fused: one update of the whole qkv Linear; split: one per part in ``split_targets``."""
    split_targets: Annotated[list[Literal["q", "k", "v"]], Predicate(distinct_parts)] = field(
        default_factory=lambda: ["q", "k"])
    """The parts of qkv that get their own update when ``qkv: split``."""
    init: Literal["lora", "houlsby"] = "lora"
    """With ``qkv: split``: lora starts A kaiming-uniform and B at zero (peft, the LoRA paper: the update
    starts at zero); houlsby draws both from a normal of std 0.01 cut at 2 std, as Adapter+'s LoRA baseline
    runs (its LoRAAttention builds each Adapter without passing conf/lora/base_lora.yaml's ``init: lora``,
    so Adapter's default houlsby init applies: adapter_plus/vit_adapter.py lines 30, 52-63, 129-141)."""
    dropout_mask: Literal["shared", "per_part"] = "shared"
    """With ``qkv: split``: shared draws one dropout mask on the input for all parts (as one peft layer
    does); per_part draws one per part, as Adapter+'s baseline, where each adapter has its own Dropout."""


@dataclass
class PeftOptions:
    """Any peft tuner: ``peft_type`` names it (LORA, VERA, IA3, LOHA, ...), ``peft_config`` its options."""

    peft_type: str = "LORA"
    """The peft tuner (LORA, VERA, IA3, LOHA, ...)."""
    peft_config: dict[str, Any] = field(default_factory=dict)
    """Its options as peft spells them (checked by peft's config class)."""


register(MethodSpec(
    name="lora",
    pace=True,
    summary="LoRA through peft: low-rank update of qkv (mergeable)",
    options=LoraOptions,
    implementation="adaptcli.methods.peft_tuners.method:Lora",
    order=13,
    mergeable=True,
))
register(MethodSpec(
    name="dora",
    pace=True,
    summary="DoRA through peft: LoRA with a learned magnitude per output (mergeable)",
    options=LoraOptions,
    implementation="adaptcli.methods.peft_tuners.method:Dora",
    order=14,
    mergeable=True,
))
register(MethodSpec(
    name="peft",
    summary="any peft tuner: method.peft_type and method.peft_config (merged where peft can merge it)",
    options=PeftOptions,
    implementation="adaptcli.methods.peft_tuners.method:AnyPeftTuner",
    order=15,
    mergeable=True,
))
