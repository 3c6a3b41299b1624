"""A batch of the stream: one :class:`Batch` type for training, evaluation and cached features, and the
collate functions that build it from decoded (or still encoded) samples."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from adaptcli.data.stream.batch_decode import EncodedClip, EncodedFrames
from adaptcli.data.stream.transforms import normalise


@dataclass(eq=False)  # tensors have no single truth value: a batch equals only itself
class Batch:
    """Samples and their labels, with what the stream skipped on the way.

    Exactly one of ``inputs`` (normalised float32: images ``B x 3 x H x W``, training clips
    ``B x 3 x T x H x W``, evaluation clips ``B x V x 3 x T x H x W``) and ``encoded`` (the frames' file
    bytes, ``data.decode: cuda``) is set. ``labels``: ``B`` class indices, or ``B x C`` multi-hot floats.
    ``damaged``: shards this worker's stream skipped so far -> first reason; ``skipped``: samples
    skipped since the previous batch (training).
    """

    labels: torch.Tensor
    keys: list[str]
    inputs: torch.Tensor | None = None
    encoded: EncodedFrames | None = None
    damaged: dict[str, str] = field(default_factory=dict)
    skipped: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def pin_memory(self) -> Batch:
        """The tensors page-locked; the DataLoader calls this when built with ``pin_memory=True``."""
        return dataclasses.replace(
            self, labels=self.labels.pin_memory(),
            inputs=None if self.inputs is None else self.inputs.pin_memory(),
            encoded=None if self.encoded is None else self.encoded.pin_memory())

    def inputs_on(self, device: torch.device | str) -> torch.Tensor:
        """The inputs on ``device``: copied without blocking, or decoded there when encoded."""
        if self.encoded is not None:
            return self.encoded.decode(device)
        assert self.inputs is not None  # one of the two is always set
        return self.inputs.to(device, non_blocking=True)

    def to(self, device: torch.device | str) -> Batch:
        """Inputs (:meth:`inputs_on`) and labels on ``device``."""
        return dataclasses.replace(self, inputs=self.inputs_on(device), encoded=None,
                                   labels=self.labels.to(device, non_blocking=True))


def label_tensor(labels: Sequence[Any]) -> torch.Tensor:
    """Class indices as ``B`` int64, or multi-hot vectors (multi-label) as ``B x C`` float32."""
    if isinstance(labels[0], np.ndarray):
        return torch.from_numpy(np.stack(labels))
    return torch.tensor(labels, dtype=torch.long)


class Collate:
    """Stack uint8 samples and normalise the whole batch at once (one float copy, in the worker)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], video: bool) -> None:
        self.mean, self.std, self.video = mean, std, video

    def __call__(self, samples: list[tuple[np.ndarray, Any, str]]) -> Batch:
        import torch.utils.data

        arrays, labels, keys = zip(*samples)
        shared = torch.utils.data.get_worker_info() is not None
        return Batch(inputs=normalise(np.stack(arrays), self.mean, self.std, self.video, shared=shared),
                     labels=label_tensor(labels), keys=list(keys))


class EncodedCollate:
    """Encoded samples -> one batch whose :class:`EncodedFrames` hold every frame's bytes in one uint8
    tensor (pinnable) with offsets, the boxes, flips and what decoding needs (size, normalisation, layout)."""

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...], video: bool) -> None:
        self.size, self.mean, self.std, self.video = size, tuple(mean), tuple(std), video

    def __call__(self, samples: list[tuple[EncodedClip, Any, str]]) -> Batch:
        clips, labels, keys = zip(*samples)
        frames = [frame for clip in clips for frame in clip.frames]
        lengths = np.fromiter((len(f) for f in frames), dtype=np.int64, count=len(frames))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        data = torch.frombuffer(bytearray(b"".join(frames)), dtype=torch.uint8) if frames else torch.empty(0, dtype=torch.uint8)
        encoded = EncodedFrames(data=data, offsets=torch.from_numpy(offsets),
                                boxes=torch.tensor([c.box for c in clips], dtype=torch.float64),
                                flips=[c.flip for c in clips], frames=len(clips[0].frames), size=self.size,
                                mean=self.mean, std=self.std, video=self.video)
        return Batch(encoded=encoded, labels=label_tensor(labels), keys=list(keys))


__all__ = ["Batch", "Collate", "EncodedCollate", "label_tensor"]
