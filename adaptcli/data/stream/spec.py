"""What the model wants from the stream (size, frames, normalisation) and how to augment it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from adaptcli.data.config import DataConfig


@dataclass
class StreamSpec:
    """What the model wants from the stream (size, frames, normalisation) and how to augment."""

    img_size: int
    num_frames: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sampling: str = "segment"
    stride: int = 4
    augment: str = "random_resized_crop"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    crop_pct: float = 0.875
    shuffle_buffer: int = 500
    rand_augment: str | None = None
    repeated_aug: int = 1

    @classmethod
    def from_config(cls, data: DataConfig, img_size: int, num_frames: int, mean: Iterable[float],
                    std: Iterable[float]) -> "StreamSpec":
        """Take the sampling and augmentation settings from a :class:`DataConfig`."""
        return cls(img_size=img_size, num_frames=num_frames, mean=tuple(mean), std=tuple(std),  # type: ignore[arg-type]
                   sampling=data.sampling, stride=data.stride, augment=data.augment,
                   crop_scale=(float(data.crop_scale[0]), float(data.crop_scale[1])), flip=data.flip,
                   crop_pct=data.crop_pct, shuffle_buffer=data.shuffle_buffer, rand_augment=data.rand_augment,
                   repeated_aug=data.repeated_aug)


__all__ = ["StreamSpec"]
