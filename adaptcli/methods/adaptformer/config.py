"""AdaptFormer's options (Chen et al., NeurIPS 2022) and its registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from annotated_types import Ge, Interval

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class AdaptFormerOptions:
    """AdaptMLP beside each block's MLP (AdaptFormer, NeurIPS 2022)."""

    mid_dim: Annotated[int, Ge(1)] = 64
    scale: float = 0.1
    form: Literal["parallel", "sequential"] = "parallel"
    layernorm: Literal["none", "in"] = "none"
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.1
    layers: Optional[list[Annotated[int, Ge(0)]]] = None


register(MethodSpec(
    name="adaptformer",
    summary="bottleneck AdaptMLP beside each block's MLP",
    options=AdaptFormerOptions,
    implementation="adaptcli.methods.adaptformer.method:AdaptFormer",
    order=10,
))
