"""Temporal sampling: which frame indices of an ``n``-frame clip feed a ``T``-frame model.

Pure functions of their arguments (randomness only through the ``rng`` passed in), so they are
easy to test and reproduce. Clips shorter than needed repeat their last frame.

- ``segment``: TSN / the SSv2 protocol of VideoMAE. The clip is cut into T equal segments and
  one frame is taken from each, at random when training, at the middle when evaluating (clip c of
  C takes the point ``(c + 0.5) / C`` of every segment).
- ``stride``: the AdaptFormer / Kinetics protocol. T frames ``stride`` apart from a random
  offset when training; C evaluation clips start at offsets spread evenly over the clip.

A recipe's ``stride`` counts frames at the clip's **source** rate (VideoMAE's "sampling rate 4" on
30 fps Kinetics: frames 4/30 s apart). Shards stored at a lower rate (``prepare --fps``) hold fewer
frames; :func:`stored_stride` converts the stride to stored frames (4 at 30 fps is 1 at 7.5 fps),
so a clip spans the same seconds whatever the stored rate. A converted stride that is not whole
takes the nearest stored frame; one below 1 (stored rate below source rate / stride) repeats frames.
"""

from __future__ import annotations

import random
from typing import Literal


def _pad(indices: list[int], num_frames: int) -> list[int]:
    """Cut to T indices; when short, repeat the last one."""
    return indices + [indices[-1]] * (num_frames - len(indices)) if indices else [0] * num_frames


def segment_indices(n: int, num_frames: int, train: bool, rng: random.Random | None = None,
                    clip_index: int = 0, num_clips: int = 1) -> list[int]:
    """One frame from each of ``num_frames`` equal segments of an ``n``-frame clip."""
    if n < 1 or num_frames < 1:
        raise ValueError(f"need n >= 1 and num_frames >= 1, got n={n}, num_frames={num_frames}")
    if n < num_frames:
        return _pad(list(range(n)), num_frames)
    length = n / num_frames
    indices = []
    for i in range(num_frames):
        start = int(round(length * i))
        end = max(start + 1, int(round(length * (i + 1))))
        if train:
            rng = rng or random.Random()
            indices.append(rng.randrange(start, end))
        else:
            point = (clip_index + 0.5) / num_clips
            indices.append(min(end - 1, start + int(point * (end - start))))
    return indices


def stored_stride(stride: int, source_fps: float | None, stored_fps: float | None) -> float:
    """``stride`` frames at the source rate in frames at the stored rate (unchanged when either is unknown)."""
    if not source_fps or not stored_fps:
        return stride
    return stride * stored_fps / source_fps


def _near(value: float) -> int:
    return int(value + 0.5)


def stride_indices(n: int, num_frames: int, stride: float, train: bool, rng: random.Random | None = None,
                   clip_index: int = 0, num_clips: int = 1) -> list[int]:
    """``num_frames`` frames ``stride`` apart; random offset (train) or evenly spread clips (eval).

    ``stride`` may be fractional (converted by :func:`stored_stride`): frame i is the nearest to
    ``start + i * stride``.
    """
    if n < 1 or num_frames < 1 or not stride > 0:
        raise ValueError(f"need n, num_frames >= 1 and stride > 0, got {n}, {num_frames}, {stride}")
    span = _near((num_frames - 1) * stride) + 1
    room = max(0, n - span)
    if train:
        start = (rng or random.Random()).randint(0, room)
    elif num_clips == 1:
        start = room // 2
    else:
        start = int(round(room * clip_index / (num_clips - 1)))
    return [min(start + _near(i * stride), n - 1) for i in range(num_frames)]


def clip_indices(kind: Literal["segment", "stride"], n: int, num_frames: int, train: bool,
                 rng: random.Random | None = None, stride: float = 4, clip_index: int = 0,
                 num_clips: int = 1) -> list[int]:
    """Dispatch on the sampling ``kind`` of :class:`~adaptcli.data.config.DataConfig`."""
    if kind == "segment":
        return segment_indices(n, num_frames, train, rng, clip_index, num_clips)
    if kind == "stride":
        return stride_indices(n, num_frames, stride, train, rng, clip_index, num_clips)
    raise ValueError(f"unknown sampling {kind!r}")


__all__ = ["segment_indices", "stride_indices", "stored_stride", "clip_indices"]
