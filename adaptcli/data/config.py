"""The data section of a run's configuration (how samples are streamed). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass
class DataConfig:
    """How samples are streamed from prepared shards."""

    train_split: str = "train"
    val_split: Optional[str] = "validation"
    test_split: str = "test"
    sampling: Literal["segment", "stride"] = "segment"
    stride: int = 4
    augment: Literal["random_resized_crop", "resize", "resize_crop"] = "random_resized_crop"
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    flip: bool = True
    crop_pct: float = 0.875
    workers: int = 2
    shuffle_buffer: int = 500
