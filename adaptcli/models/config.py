"""The model section of a run's configuration (which backbone). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from annotated_types import Ge, Interval


@dataclass
class ModelConfig:
    """The backbone. ``name`` is a timm model name or one of adaptcli's registered video models."""

    name: str = "vit_small_patch16_224"
    checkpoint: Optional[str] = None
    pretrained: bool = False
    img_size: Annotated[int, Ge(1)] = 224
    num_frames: Annotated[int, Ge(1)] = 8
    drop_path: Annotated[float, Interval(ge=0, lt=1)] = 0.0
