"""ARC's options (Dong et al., Adapter Re-Composing) and the registration of arc and arc_att."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from annotated_types import Ge, Interval

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class ArcOptions:
    """Adapter Re-Composing: shared symmetric projection, per-layer scale and bias."""

    dim: Annotated[int, Ge(1)] = 50
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.1
    #: official: as ARC's released code (attention-side scales zero, MLP-side xavier-uniform);
    #: zero: both zero (the adapter starts as the identity); xavier: both xavier-uniform.
    scale_init: Literal["official", "zero", "xavier"] = "official"
    layers: Optional[list[Annotated[int, Ge(0)]]] = None


register(MethodSpec(
    name="arc",
    summary="shared low-rank re-composition after both LayerNorms (mergeable)",
    options=ArcOptions,
    implementation="adaptcli.methods.arc.method:Arc",
    order=20,
    mergeable=True,
))
register(MethodSpec(
    name="arc_att",
    summary="ARC on the attention side only (mergeable)",
    options=ArcOptions,
    implementation="adaptcli.methods.arc.method:ArcAttention",
    order=21,
    mergeable=True,
))
