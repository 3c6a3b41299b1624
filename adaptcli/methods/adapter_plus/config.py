"""Adapter+'s options (Steitz & Roth, CVPR 2024) and its registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class AdapterPlusOptions:
    """A bottleneck adapter after each block with a learned per-channel scale (the "post" position)."""

    bottleneck: int = 8
    drop_path: float = 0.1
    init_std: float = 0.01
    layers: Optional[list[int]] = None


register(MethodSpec(
    name="adapter_plus",
    summary="Adapter+: bottleneck adapter after each block with a per-channel scale",
    options=AdapterPlusOptions,
    implementation="adaptcli.methods.adapter_plus.method:AdapterPlus",
    order=12,
))
