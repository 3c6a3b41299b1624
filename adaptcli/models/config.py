"""The model section of a run's configuration (which backbone). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass
class ModelConfig:
    """The backbone. ``name`` is a timm model name or one of adaptcli's registered video models."""

    name: str = "vit_small_patch16_224"
    checkpoint: Optional[str] = None
    pretrained: bool = False
    img_size: int = 224
    num_frames: int = 8
    drop_path: float = 0.0
