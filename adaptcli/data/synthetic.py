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


def fractal_noise(height: int, width: int, rng: np.random.Generator, octaves: int = 7,
                  falloff: float = 0.85) -> np.ndarray:
    """H x W float32 multi-octave value noise in [0, 1]: random grids from 4 x 4 cells upwards, each
    octave twice as fine and ``falloff`` times as strong (about the 1/f spectrum of natural images)."""
    from PIL import Image

    total = np.zeros((height, width), dtype=np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = 4 * 2 ** octave
        if cells >= 2 * max(height, width):
            break
        long = max(height, width)  # ``cells`` cells along the long side, square cells
        grid = rng.random((max(2, height * cells // long) + 1, max(2, width * cells // long) + 1), dtype=np.float32)
        layer = Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC)
        total += amplitude * np.asarray(layer)
        weight += amplitude
        amplitude *= falloff
    total /= weight
    low, high = np.percentile(total, (1, 99))
    return np.clip((total - low) / max(1e-6, high - low), 0.0, 1.0)


def natural_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """H x W x 3 uint8 natural-looking texture: regions with hard edges (a thresholded low-frequency
    field), each with its own colour, shaded by fractal luminance and weaker chroma noise."""
    regions = np.floor(fractal_noise(height, width, rng, octaves=3) * 4.999).astype(np.intp)
    palette = rng.uniform(40, 215, size=(5, 3)).astype(np.float32)
    luminance = fractal_noise(height, width, rng) - 0.5
    chroma = np.stack([fractal_noise(height, width, rng, octaves=4) for _ in range(3)], axis=-1) - 0.5
    image = palette[regions] + 110 * luminance[..., None] + 30 * chroma
    return np.clip(image, 0, 255).astype(np.uint8)


def natural_clip(num_frames: int, height: int, width: int, seed: int = 0, *, pan: float = 0.25,
                 zoom: float = 0.1, noise: float = 3.0) -> np.ndarray:
    """T x H x W x 3 uint8 frames that compress like camera video rather than flat shapes.

    A camera pans (up to ``pan`` of the frame over the clip, with a slow sway) and zooms in by up to
    ``zoom`` over a larger :func:`natural_texture`; a textured object crosses the view on a curved
    path; every frame gets Gaussian sensor noise of ``noise`` grey levels. Sub-pixel motion and the
    noise are what make inter-frame prediction imperfect, as in real footage.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    margin = 1 + pan + zoom
    canvas_h, canvas_w = int(height * margin) + 2, int(width * margin) + 2
    canvas = Image.fromarray(natural_texture(canvas_h, canvas_w, rng))
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    sway_phase, sway_freq = rng.uniform(0, 2 * np.pi, 2), rng.uniform(0.5, 1.5, 2)
    zoom_end = 1 + rng.uniform(0, zoom)

    side = int(min(height, width) * rng.uniform(0.3, 0.5))
    obj = natural_texture(side, side, rng).astype(np.float32)
    yy, xx = np.mgrid[:side, :side] / (side - 1) * 2 - 1
    mask = np.clip((1 - np.hypot(xx, yy * rng.uniform(0.7, 1.3))) * side / 4, 0, 1)[..., None].astype(np.float32)
    room = np.array([width - side, height - side])
    start, end = rng.uniform(0, 1, 2) * room, rng.uniform(0, 1, 2) * room
    bend = rng.normal(scale=0.15 * min(height, width), size=2)

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        f = t / max(1, num_frames - 1)
        scale = 1 / (1 + (zoom_end - 1) * f)  # source pixels per output pixel
        sway = 0.03 * np.sin(2 * np.pi * sway_freq * f + sway_phase) * (width, height)
        cx = canvas_w / 2 + (f - 0.5) * pan * width * direction[0] + sway[0]
        cy = canvas_h / 2 + (f - 0.5) * pan * height * direction[1] + sway[1]
        affine = (scale, 0, cx - scale * width / 2, 0, scale, cy - scale * height / 2)
        view = canvas.transform((width, height), Image.AFFINE, affine, resample=Image.BILINEAR)
        frame = np.asarray(view, dtype=np.float32).copy()
        x, y = (1 - f) * start + f * end + 4 * f * (1 - f) * bend
        x0, y0 = int(np.clip(x, 0, width - side)), int(np.clip(y, 0, height - side))
        patch = frame[y0:y0 + side, x0:x0 + side]
        patch += mask * (obj - patch)
        frame += rng.normal(scale=noise, size=frame.shape).astype(np.float32)
        frames[t] = np.clip(frame, 0, 255)
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
    "fractal_noise",
    "natural_texture",
    "natural_clip",
    "write_ssv2_layout",
    "write_image",
    "write_image_folder",
]
