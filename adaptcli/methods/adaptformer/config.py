"""AdaptFormer's options (Chen et al., NeurIPS 2022) and its registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class AdaptFormerOptions:
    """AdaptMLP beside each block's MLP (AdaptFormer, NeurIPS 2022)."""

    mid_dim: int = 64
    scale: float = 0.1
    form: Literal["parallel", "sequential"] = "parallel"
    layernorm: Literal["none", "in"] = "none"
    dropout: float = 0.1
    layers: Optional[list[int]] = None


register(MethodSpec(
    name="adaptformer",
    summary="bottleneck AdaptMLP beside each block's MLP",
    options=AdaptFormerOptions,
    implementation="adaptcli.methods.adaptformer.method:AdaptFormer",
    order=10,
))
