"""Adapter+'s options (Steitz & Roth, CVPR 2024) and its registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

from annotated_types import Ge, Interval

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class AdapterPlusOptions:
    """A bottleneck adapter after each block with a learned per-channel scale (the "post" position)."""

    bottleneck: Annotated[int, Ge(1)] = 8
    """The adapter's bottleneck width."""
    drop_path: Annotated[float, Interval(ge=0, lt=1)] = 0.1
    """Drop-path rate on the adapter's output."""
    init_std: Annotated[float, Ge(0)] = 0.01
    """Standard deviation of the (truncated normal) initial projection weights."""
    layers: Optional[list[Annotated[int, Ge(0)]]] = None
    """0-based indices of the blocks that get it; null: every block."""


register(MethodSpec(
    name="adapter_plus",
    pace=True,
    summary="Adapter+: bottleneck adapter after each block with a per-channel scale",
    options=AdapterPlusOptions,
    implementation="adaptcli.methods.adapter_plus.method:AdapterPlus",
    order=12,
))
