"""The model section of a run's configuration (which backbone). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from annotated_types import Ge, Interval


@dataclass
class ModelConfig:
    """The backbone. ``name`` is a timm model name or one of adaptcli's registered video models."""

    name: str = "vit_small_patch16_224"
    """A timm model name or one of adaptcli's registered video models."""
    checkpoint: Optional[str] = None
    """A backbone weights file to load (``--checkpoint``); null: none (random weights, or ``pretrained``)."""
    pretrained: bool = False
    """Download timm's pretrained weights for ``name``."""
    img_size: Annotated[int, Ge(1)] = 224
    """Input image (frame) size in pixels."""
    num_frames: Annotated[int, Ge(1)] = 8
    """Frames per video clip (video models)."""
    drop_path: Annotated[float, Interval(ge=0, lt=1)] = 0.0
    """Stochastic depth rate of the backbone's blocks."""
    head_dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0
    """Dropout on the pooled features before the classifier (the model's ``head_drop``: VideoMAE's
    ``--fc_drop_rate``); 0: off."""
