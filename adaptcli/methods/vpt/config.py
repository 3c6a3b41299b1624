"""Visual prompt tuning's options (Jia et al., ECCV 2022) and the registration of both variants."""

from __future__ import annotations

from dataclasses import dataclass

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class VptShallowOptions:
    """Visual prompt tuning, prompts at the input only."""

    tokens: int = 5
    dropout: float = 0.0


@dataclass
class VptDeepOptions:
    """Visual prompt tuning, a fresh set of prompts before every block (AdaptFormer Table 1: 1 token)."""

    tokens: int = 1
    dropout: float = 0.1


register(MethodSpec(
    name="vpt_shallow",
    summary="learnable prompt tokens before the first block",
    options=VptShallowOptions,
    implementation="adaptcli.methods.vpt.method:VptShallow",
    order=30,
    adds_tokens=True,
))
register(MethodSpec(
    name="vpt_deep",
    summary="fresh prompt tokens before every block",
    options=VptDeepOptions,
    implementation="adaptcli.methods.vpt.method:VptDeep",
    order=31,
    adds_tokens=True,
))
