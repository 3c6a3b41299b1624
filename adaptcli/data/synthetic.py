"""Small synthetic datasets in real on-disk formats, for tests, the demo and the benchmark.

Everything here writes genuine files (VP9 webm through PyAV, JSON label files in the SSv2
naming, JPEG/PNG image folders) so the ``prepare`` code paths run exactly as on real data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

SSV2_VIDEO_DIR = "20bn-something-something-v2"

# A clip for write_ssv2_layout: (id, template, placeholders, frames T x H x W x 3 uint8)
SyntheticClip = tuple[str, str, list[str], np.ndarray]


def write_video(path: str | Path, frames: np.ndarray, fps: int = 12, codec: str = "libvpx-vp9",
                options: dict[str, str] | None = None) -> Path:
    """Encode ``frames`` (T x H x W x 3 uint8, H and W even) into a video file with PyAV."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be T x H x W x 3, got {frames.shape}")
    _, height, width, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if options:
            stream.options = options
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_webm(path: str | Path, frames: np.ndarray, fps: int = 12) -> Path:
    """Write a VP9 webm (the SSv2 format) from T x H x W x 3 uint8 frames."""
    opts = {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"}
    return write_video(path, frames, fps=fps, codec="libvpx-vp9", options=opts)


def write_avi(path: str | Path, frames: np.ndarray, fps: int = 30) -> Path:
    """Write an MPEG-4 part 2 AVI (the HMDB51 format, XviD-like) from T x H x W x 3 uint8 frames."""
    return write_video(path, frames, fps=fps, codec="mpeg4", options={"qscale": "3"})


def moving_square(direction: Literal["left", "right", "up", "down"], num_frames: int, height: int,
                  width: int, seed: int = 0) -> np.ndarray:
    """A textured background with a bright square moving in ``direction``: a learnable motion class."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 80, size=(height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    background = np.repeat(np.repeat(base, 4, axis=0), 4, axis=1)[:height, :width]
    side = max(4, min(height, width) // 4)
    colour = rng.integers(150, 256, size=3, dtype=np.uint8)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    y0 = int(rng.integers(0, height - side + 1))
    x0 = int(rng.integers(0, width - side + 1))
    for t in range(num_frames):
        f = t / max(1, num_frames - 1)
        x, y = x0, y0
        if direction in ("left", "right"):
            x = int(round((f if direction == "right" else 1 - f) * (width - side)))
        else:
            y = int(round((f if direction == "down" else 1 - f) * (height - side)))
        frame = background.copy()
        frame[y:y + side, x:x + side] = colour
        frames[t] = frame
    return frames


def write_ssv2_layout(
    root: str | Path,
    clips: Sequence[SyntheticClip],
    splits: dict[str, Sequence[str]] | None = None,
    *,
    naming: Literal["labels", "prefixed"] = "labels",
    fps: int = 12,
    unlabelled: Sequence[str] = ("test",),
    extra_ids: dict[str, Sequence[str]] | None = None,
) -> Path:
    """Write an SSv2-layout dataset: ``20bn-something-something-v2/<id>.webm`` plus label files.

    Args:
        root: dataset root to create.
        clips: ``(id, template, placeholders, frames)``; the template uses ``[something]`` slots.
        splits: split name -> clip ids (default: every clip in ``train``).
        naming: ``labels`` writes ``labels/train.json`` ...; ``prefixed`` writes
            ``something-something-v2-train.json`` ... at the root.
        unlabelled: splits written like SSv2's test.json (ids only).
        extra_ids: split -> ids listed in the label file but given no video (a real SSv2 quirk).
    Returns:
        ``root``.
    """
    root = Path(root)
    video_dir = root / SSV2_VIDEO_DIR
    video_dir.mkdir(parents=True, exist_ok=True)
    by_id = {}
    for clip_id, template, placeholders, frames in clips:
        write_webm(video_dir / f"{clip_id}.webm", frames, fps=fps)
        by_id[clip_id] = (template, list(placeholders))
    templates = sorted({t.replace("[", "").replace("]", "") for t, _ in by_id.values()})
    labels = {name: str(i) for i, name in enumerate(templates)}
    splits = dict(splits) if splits is not None else {"train": list(by_id)}
    extra_ids = extra_ids or {}

    def filename(kind: str) -> Path:
        if naming == "labels":
            (root / "labels").mkdir(exist_ok=True)
            return root / "labels" / f"{kind}.json"
        return root / f"something-something-v2-{kind}.json"

    filename("labels").write_text(json.dumps(labels, indent=1))
    for split, ids in splits.items():
        records = []
        for clip_id in list(ids) + list(extra_ids.get(split, [])):
            if split in unlabelled:
                records.append({"id": clip_id})
                continue
            template, placeholders = by_id.get(clip_id, next(iter(by_id.values())))
            label = template
            for word in placeholders:
                label = label.replace("[something]", word, 1)
            records.append({"id": clip_id, "label": label, "template": template,
                            "placeholders": placeholders})
        filename(split).write_text(json.dumps(records, indent=1))
    return root


def write_image(path: str | Path, array: np.ndarray, quality: int = 92) -> Path:
    """Write an H x W x 3 uint8 array as JPEG or PNG (by extension)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=quality)
    else:
        image.save(path)
    return path


def write_image_folder(root: str | Path, splits: dict[str, dict[str, Sequence[np.ndarray]]],
                       ext: str = "jpg") -> Path:
    """Write ``root/<split>/<class>/<i>.<ext>`` from split -> class -> arrays."""
    root = Path(root)
    for split, classes in splits.items():
        for name, arrays in classes.items():
            for i, array in enumerate(arrays):
                write_image(root / split / name / f"{i:04d}.{ext}", array)
    return root


__all__ = [
    "SSV2_VIDEO_DIR",
    "SyntheticClip",
    "write_video",
    "write_webm",
    "write_avi",
    "moving_square",
    "write_ssv2_layout",
    "write_image",
    "write_image_folder",
]
