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
    """The AdaptMLP's bottleneck width."""
    scale: float = 0.1
    """The fixed factor on the AdaptMLP's output."""
    form: Literal["parallel", "sequential"] = "parallel"
    """parallel: beside the block's MLP; sequential: after it."""
    layernorm: Literal["none", "in"] = "none"
    """in: a LayerNorm on the AdaptMLP's input; none: no norm."""
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.1
    """Dropout inside the AdaptMLP."""
    layers: Optional[list[Annotated[int, Ge(0)]]] = None
    """0-based indices of the blocks that get it; null: every block."""


register(MethodSpec(
    name="adaptformer",
    pace=True,
    summary="bottleneck AdaptMLP beside each block's MLP",
    options=AdaptFormerOptions,
    implementation="adaptcli.methods.adaptformer.method:AdaptFormer",
    order=10,
))
