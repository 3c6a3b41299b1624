"""The attentive probe's options (V-JEPA 2's frozen evaluation, facebookresearch/vjepa2) and its registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

from annotated_types import Ge, Gt, MinLen

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class AttentiveProbeOptions:
    """V-JEPA's attentive classifier on the frozen backbone's patch tokens (one learned query).

    Defaults: configs/eval/vitl/*.yaml of facebookresearch/vjepa2 (``num_probe_blocks: 4``,
    ``num_heads: 16``) and src/models/attentive_pooler.py (``mlp_ratio=4.0``, ``init_std=0.02``).
    """

    depth: Annotated[int, Ge(1)] = 4
    """Pooler blocks: depth - 1 self-attention blocks over the tokens, then the cross-attention block."""
    heads: Annotated[int, Ge(1)] = 16
    """Attention heads of every pooler block (must divide the backbone's width)."""
    mlp_ratio: Annotated[float, Gt(0)] = 4.0
    """Hidden width of the pooler blocks' MLPs, as a multiple of the backbone's width."""
    lrs: Optional[Annotated[list[Annotated[float, Gt(0)]], MinLen(1)]] = None
    """A grid of probes: one per lr here and weight decay in ``weight_decays`` (every pair), all trained on one
    frozen backbone pass per batch, each with its own optimiser settings; the best on validation is the run's
    model. null: ``train.lr`` alone (one probe)."""
    weight_decays: Optional[Annotated[list[Annotated[float, Ge(0)]], MinLen(1)]] = None
    """The grid's weight decays (see ``lrs``); null: ``train.weight_decay`` alone."""


register(MethodSpec(
    name="attentive_probe",
    summary="V-JEPA attentive probe (learned query, cross-attention, linear head) on frozen tokens",
    options=AttentiveProbeOptions,
    implementation="adaptcli.methods.attentive_probe.method:AttentiveProbe",
    order=41,
    feature_cache=True,
    probe_grid=True,
))
