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
    """The split that trains."""
    val_split: Optional[str] = "validation"
    """The split validated during training (looked up by the split-name table, so ``validation`` finds ``val``);
    ``validation`` validates only when the data has one, any other name must be a split of the data; null: no
    validation."""
    test_split: str = "test"
    """The split ``eval`` and suites test on."""
    sampling: Literal["segment", "stride"] = "segment"
    """How a training clip's frames are drawn from a video: one random segment, or every ``stride``-th frame."""
    stride: Annotated[int, Ge(1)] = 4
    """The frame stride of ``sampling: stride``."""
    augment: Literal["random_resized_crop", "resize", "resize_crop"] = "random_resized_crop"
    """The training crop: a random resized crop, the whole image resized, or the short side resized to
    ``img_size / crop_pct`` and a random square crop."""
    crop_scale: Annotated[list[Annotated[float, Interval(gt=0, le=1)]], Len(2, 2), Predicate(increasing)] = field(
        default_factory=lambda: [0.08, 1.0])
    """The area range (lower, upper) of the random resized crop, as fractions of the image."""
    flip: bool = True
    """Random horizontal flips in training (never on a dataset whose labels tell left from right)."""
    crop_pct: Annotated[float, Interval(gt=0, le=1)] = 0.875
    """The evaluation centre crop: the short side is resized to ``img_size / crop_pct``, then cropped."""
    workers: Annotated[int, Ge(0)] = 2
    """Loader worker processes; 0: load in the training process."""
    decode: Literal["cpu", "cuda", "auto"] = "cpu"
    """Where training batches are decoded: the loader workers (cpu), or the training device (cuda: workers
    only read and sample the JPEG bytes); auto is cpu until a measurement shows cuda faster."""
    shuffle_buffer: Annotated[int, Ge(0)] = 500
    """Training samples held in the shuffle buffer of the streamed shards."""
    rand_augment: Optional[str] = None
    """timm RandAugment on each training clip, the same ops on every frame
    (:mod:`adaptcli.data.stream.clip_augment`), e.g. ``rand-m9-mstd0.5``; null: off."""
    repeated_aug: Annotated[int, Ge(1)] = 1
    """Augmented copies of each training sample (VideoMAE's ``--num_sample``): the same frames, each copy
    with its own crop, flip and RandAugment; a batch holds ``train.batch_size`` samples x this many
    copies (the epoch's steps and the lr scaling count samples, as VideoMAE's); 1: off."""
