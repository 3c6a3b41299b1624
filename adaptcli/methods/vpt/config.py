"""Visual prompt tuning's options (Jia et al., ECCV 2022) and the registration of both variants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Interval

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class VptShallowOptions:
    """Visual prompt tuning, prompts at the input only."""

    tokens: Annotated[int, Ge(1)] = 5
    """Prompt tokens."""
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0
    """Dropout on the prompts."""


@dataclass
class VptDeepOptions:
    """Visual prompt tuning, a fresh set of prompts before every block (AdaptFormer Table 1: 1 token)."""

    tokens: Annotated[int, Ge(1)] = 1
    """Prompt tokens per block."""
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.1
    """Dropout on the prompts."""


register(MethodSpec(
    name="vpt_shallow",
    summary="learnable prompt tokens before the first block",
    options=VptShallowOptions,
    implementation="adaptcli.methods.vpt.method:VptShallow",
    order=30,
))
register(MethodSpec(
    name="vpt_deep",
    summary="fresh prompt tokens before every block",
    options=VptDeepOptions,
    implementation="adaptcli.methods.vpt.method:VptDeep",
    order=31,
))
