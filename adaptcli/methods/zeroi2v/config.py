"""ZeroI2V's options (Li et al., ECCV 2024: zero-cost image-to-video adaptation) and its registration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Optional

from annotated_types import Ge, Gt, Interval

from adaptcli.methods.registry import MethodSpec, register


@dataclass
class ZeroI2VOptions:
    """An image ViT on video frames: a parameter-free head-wise temporal shift of keys and values inside
    attention, and four linear adapters per block that merge after training (MCG-NJU/ZeroI2V
    ``vit_zero_clip.py``; defaults from ``configs/recognition/vit_zero_clip/CLIP-B_k400_8x16x1.py``)."""

    shift_div: Optional[Annotated[int, Ge(1)]] = None
    """Each shifted group is D // shift_div channels of the key and the value, whole heads; null: the number of
    heads, one head per group (the official ViT-B/16 configs: 12 on 12 heads; its ViT-L/14 K400 config uses 8 on
    16 heads, two heads per group)."""
    offsets: list[int] = field(default_factory=lambda: [1, -1])
    """Frame offset of each group in turn: group g at frame t reads frame t - offsets[g] (K400: 1, -1; the SSv2
    config adds 2, -2)."""
    mlp_ratio: Annotated[float, Gt(0)] = 0.25
    """Adapter bottleneck width as a fraction of D (official ``mlp_ratio``)."""
    scale: float = 0.5
    """Fixed factor on each adapter's branch (official ``adapter_scale``: 0.5 on K400, 1 on SSv2)."""
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.1
    """Dropout between the adapter's two linears (official ``dropout_rate``: 0.1 on K400, 0 on SSv2)."""
    layers: Optional[list[Annotated[int, Ge(0)]]] = None
    """0-based indices of the blocks that get adapters; null: every block (the shift is in every block)."""
    temporal_embedding: bool = False
    """Train the official learned ``temporal_embedding``: a ``model.num_frames x D`` table (zeros at the start, no
    weight decay) added to every token of frame t before ``norm_pre``; the official configs always have it, false
    keeps the deployed model the image ViT + the shift alone (with it the merged model keeps the table too, and
    takes clips of exactly ``model.num_frames`` frames)."""


register(MethodSpec(
    name="zeroi2v",
    summary="image ViT on video: temporal head shift in attention + linear adapters (mergeable, zero extra cost)",
    options=ZeroI2VOptions,
    implementation="adaptcli.methods.zeroi2v.method:ZeroI2V",
    order=36,
    mergeable=True,
    pace=True,
))
