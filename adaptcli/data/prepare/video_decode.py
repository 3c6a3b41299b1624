"""Video decoding with PyAV (VP9 webm, MPEG-4 AVI, H.264 mp4 ...), once, at prepare time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class BadVideo(Exception):
    """A clip that cannot be decoded completely; the message is the reason recorded in the manifest."""


@dataclass
class DecodedClip:
    """JPEG frames of one clip and what was learnt while decoding it."""

    frames: list[bytes]
    fps: float  # the source's rate
    stored_fps: float  # the rate of ``frames``: the source's, or the lower rate asked for
    source_size: tuple[int, int]  # width, height
    stored_size: tuple[int, int]


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Size with the short side at most ``short_side``, aspect kept, never up-scaled."""
    short = min(width, height)
    if not short_side or short <= short_side:
        return width, height
    scale = short_side / short
    return max(1, round(width * scale)), max(1, round(height * scale))


def _error_text(exc: Exception) -> str:
    """PyAV's message for ``exc`` without its "last error log" part, so the reason is the same in any process.

    That part is whatever FFmpeg logged last anywhere in the process (another clip, another thread)
    and is only there once something turned PyAV's logging on; importing torchvision < 0.22 does.
    A resumed ``prepare`` in a fresh process then recorded other reasons than the first run.
    """
    import av

    if not isinstance(exc, av.error.FFmpegError):
        return f"{type(exc).__name__}: {exc}"
    text = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno is not None else str(exc.strerror or "")
    if exc.filename:
        text += f": {exc.filename!r}"
    return f"{type(exc).__name__}: {text}"


def _frames(path: str | Path) -> Iterator[tuple[Any, float, float | None]]:
    """Yield (av frame, fps, expected duration in s) for the first video stream."""
    import av

    from adaptcli.files import regular_file

    try:
        regular_file(path)  # a FIFO or a device would block or never end inside FFmpeg
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise BadVideo(f"unreadable: {_error_text(exc)}") from None
    with container:
        if not container.streams.video:
            raise BadVideo("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        try:
            for frame in container.decode(stream):
                yield frame, fps, duration
        except (av.error.FFmpegError, ValueError) as exc:
            raise BadVideo(f"decode error: {_error_text(exc)}") from None


def _check_complete(last_time: float | None, count: int, fps: float, duration: float | None) -> None:
    if count == 0:
        raise BadVideo("no frames decoded")
    if duration and last_time is not None and fps > 0:
        decoded = last_time + 1.0 / fps
        if decoded < duration - max(0.5, 0.1 * duration):
            raise BadVideo(f"truncated: decoded {decoded:.2f} s of the {duration:.2f} s its container declares "
                           "(damaged when short by more than max(0.5 s, 10%))")


def stored_rate(source_fps: float, fps: float | None) -> float:
    """The rate frames are stored at: ``fps``, or the source's own when it is not above ``fps`` (or unknown)."""
    return source_fps if not fps or not source_fps or source_fps <= fps else fps


def decode_to_jpeg(path: str | Path, short_side: int | None, quality: int, fps: float | None = None) -> DecodedClip:
    """Decode every frame, shrink to ``short_side`` (never up), encode each as JPEG.

    ``fps``: keep only the frames of a ``fps`` grid (the first frame at or after each tick ``k / fps``
    s from the first frame), so a 30 fps source at 7.5 keeps frames 0, 4, 8, ...; a source not above
    ``fps`` keeps every frame (never up-sampled).
    """
    jpegs: list[bytes] = []
    rate, duration, last_time = 0.0, None, None
    source = stored = (0, 0)
    keep: float | None = None  # the rate kept, once the source's is known
    first_time, last_tick, count = 0.0, -1, 0
    for frame, rate, duration in _frames(path):
        if count == 0:
            source = (frame.width, frame.height)
            stored = scaled_size(frame.width, frame.height, short_side)
            keep = stored_rate(rate, fps)
            first_time = frame.time or 0.0
        count += 1
        last_time = frame.time
        if keep != rate and keep:
            at = (frame.time - first_time) if frame.time is not None else (count - 1) / rate
            tick = int(at * keep + 1e-6)  # the grid slot this frame falls in; 1e-6: float error of exact ticks
            if tick <= last_tick:
                continue
            last_tick = tick
        if (frame.width, frame.height) == stored:
            image = frame.to_image()
        else:
            image = frame.to_image(width=stored[0], height=stored[1], interpolation="AREA")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        jpegs.append(buffer.getvalue())
    _check_complete(last_time, count, rate, duration)
    return DecodedClip(frames=jpegs, fps=round(rate, 3), stored_fps=round(keep or rate, 3), source_size=source,
                       stored_size=stored)


def decode_to_arrays(path: str | Path) -> list[np.ndarray]:
    """Every frame as H x W x 3 uint8 (the reference projects' decode-per-epoch path)."""
    return [frame.to_ndarray(format="rgb24") for frame, _, _ in _frames(path)]


__all__ = ["BadVideo", "DecodedClip", "scaled_size", "stored_rate", "decode_to_jpeg", "decode_to_arrays"]
