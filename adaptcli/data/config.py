"""The data section of a run's configuration (how samples are streamed). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional

from annotated_types import Ge, Interval, Len, Predicate


def increasing(values: list[float]) -> bool:
    """increasing"""
    return len(values) == 2 and values[0] <= values[1]


@dataclass
class DataConfig:
    """How samples are streamed from prepared shards."""

    train_split: str = "train"
    val_split: Optional[str] = "validation"
    test_split: str = "test"
    sampling: Literal["segment", "stride"] = "segment"
    stride: Annotated[int, Ge(1)] = 4
    augment: Literal["random_resized_crop", "resize", "resize_crop"] = "random_resized_crop"
    crop_scale: Annotated[list[Annotated[float, Interval(gt=0, le=1)]], Len(2, 2), Predicate(increasing)] = field(
        default_factory=lambda: [0.08, 1.0])
    flip: bool = True
    crop_pct: Annotated[float, Interval(gt=0, le=1)] = 0.875
    workers: Annotated[int, Ge(0)] = 2
    # where training batches are decoded: the loader workers (cpu), or the training device (cuda: workers
    # only read and sample the JPEG bytes); auto is cpu until a measurement shows cuda faster
    decode: Literal["cpu", "cuda", "auto"] = "cpu"
    shuffle_buffer: Annotated[int, Ge(0)] = 500
    # timm RandAugment on each training clip, the same ops on every frame (adaptcli.data.stream.clip_augment)
    rand_augment: Optional[str] = None
