"""ARC's options (Dong et al., Adapter Re-Composing) and the registration of arc and arc_att."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from annotated_types import Ge, Interval

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class ArcOptions:
    """Adapter Re-Composing: shared symmetric projection, per-layer scale and bias."""

    dim: Annotated[int, Ge(1)] = 50
    """The rank of the shared projection."""
    dropout: Optional[Annotated[float, Interval(ge=0, lt=1)]] = None
    """Dropout inside the adapter; null: 0.1 (ARC's --adapt_drop default), 0.5 with swin_placement=official
    (the rate ARC's released Swin code trains with: DavidYanAnDe/ARC Model/ARC_swin_b.py line 256,
    ``adp_drop = 0.5``, which BasicLayer never overrides)."""
    scale_init: Literal["official", "zero", "xavier"] = "official"
    """official: as ARC's released code (attention-side scales zero, MLP-side xavier-uniform); zero: both
    zero (the adapter starts as the identity); xavier: both xavier-uniform."""
    layers: Optional[list[Annotated[int, Ge(0)]]] = None
    """0-based indices of the blocks that get it; null: every block."""
    swin_placement: Literal["mergeable", "official"] = "mergeable"
    """mergeable: on Swin too, both adapters sit after their LayerNorm and fold into qkv / fc1; official:
    as ARC's released Swin code, the MLP-side adapter rewrites the residual stream before norm2 (Swin only;
    not mergeable)."""


def arc_dropout(options: ArcOptions) -> float:
    """The adapter dropout a run trains with: the option, or the placement's official rate when null."""
    if options.dropout is not None:
        return options.dropout
    return 0.5 if options.swin_placement == "official" else 0.1


OFFICIAL_NOT_MERGEABLE = (
    "arc with method.swin_placement=official cannot be merged into the backbone (its MLP-side adapter "
    "rewrites the residual stream before norm2); export with --full or --adapter-only instead")


def arc_merge_refusal(options: Any) -> Optional[str]:
    """Why an ``arc`` run cannot be merged (its MLP-side adapter sits before norm2), or None."""
    return OFFICIAL_NOT_MERGEABLE if getattr(options, "swin_placement", "mergeable") == "official" else None


register(MethodSpec(
    name="arc",
    pace=True,
    summary="shared low-rank re-composition after both LayerNorms (mergeable)",
    options=ArcOptions,
    implementation="adaptcli.methods.arc.method:Arc",
    order=20,
    mergeable=True,
    merge_refusal=arc_merge_refusal,
))
register(MethodSpec(
    name="arc_att",
    pace=True,
    summary="ARC on the attention side only (mergeable)",
    options=ArcOptions,
    implementation="adaptcli.methods.arc.method:ArcAttention",
    order=21,
    mergeable=True,
))
