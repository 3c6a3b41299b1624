"""The demo's two synthetic datasets, written in real on-disk layouts.

* Images (the stand-in for ImageNet pre-training): one object per picture on a textured
  background; the class is the object's shape; colour, fill texture, size, position and rotation
  are random.
* Videos (the stand-in for Something-Something v2): the same kind of object on a static textured
  background, in 8 motion classes that come in time-reversed pairs: moving left / right, up / down,
  turning clockwise / anticlockwise, approaching (growing) / receding (shrinking). Every clip of one
  class of a pair has its exact time reversal in the other class (same seed, states reversed), so
  the set of frames of a clip says nothing about which class of its pair it is: only the ORDER of
  the frames does. A single frame does not even tell the pair: position, angle and size are random
  in every class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptcli.data.synthetic import write_image_folder, write_ssv2_layout

SIZE = 32  # frame and image side in pixels
SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down (anti-aliased edges)

# Polygons in unit coordinates (roughly inside the unit disc), y pointing down.
SHAPES: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)],
    "triangle": [(0.0, -1.0), (0.55, 0.8), (-0.55, 0.8)],
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
              (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "ell": [(-0.6, -1), (-0.1, -1), (-0.1, 0.5), (0.7, 0.5), (0.7, 1), (-0.6, 1)],
    "tee": [(-1, -0.9), (1, -0.9), (1, -0.4), (0.25, -0.4), (0.25, 1), (-0.25, 1), (-0.25, -0.4),
            (-1, -0.4)],
    "arrow": [(0, -1), (0.7, -0.2), (0.25, -0.2), (0.25, 1), (-0.25, 1), (-0.25, -0.2), (-0.7, -0.2)],
    "diamond": [(0, -1), (0.55, 0), (0, 1), (-0.55, 0)],
    "disc": [(math.cos(2 * math.pi * k / 24), math.sin(2 * math.pi * k / 24)) for k in range(24)],
}
#: Shapes of the video objects: none has a rotational symmetry, so turning is visible.
VIDEO_SHAPES = ("triangle", "ell", "tee", "arrow")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 40), "green": (50, 200, 70), "blue": (50, 90, 230), "yellow": (235, 215, 50),
    "magenta": (210, 60, 200), "cyan": (60, 210, 220), "orange": (245, 140, 30), "white": (240, 240, 240),
}
FILLS = ("solid", "striped", "dotted")

#: Motion classes in pairs: (forward, reversed), with their SSv2-style templates.
PAIRS: dict[str, tuple[str, str]] = {
    "horizontal": ("right", "left"),
    "vertical": ("down", "up"),
    "rotation": ("clockwise", "anticlockwise"),
    "depth": ("approaching", "receding"),
}
TEMPLATES: dict[str, str] = {
    "right": "Pushing [something] from left to right",
    "left": "Pushing [something] from right to left",
    "down": "Moving [something] down",
    "up": "Moving [something] up",
    "clockwise": "Turning [something] clockwise",
    "anticlockwise": "Turning [something] anticlockwise",
    "approaching": "Approaching [something] with your camera",
    "receding": "Moving away from [something] with your camera",
}
MOTIONS: tuple[str, ...] = tuple(c for pair in PAIRS.values() for c in pair)


@dataclass(frozen=True)
class Sizes:
    """Samples per class and split for both datasets."""

    images: dict[str, int]
    clips: dict[str, int]
    frames: int = 8


DEFAULT_SIZES = Sizes(images={"train": 320, "validation": 40, "test": 40},
                      clips={"train": 64, "validation": 16, "test": 24})
QUICK_SIZES = Sizes(images={"train": 96, "validation": 16, "test": 16},
                    clips={"train": 20, "validation": 6, "test": 8})


# --------------------------------------------------------------------------- drawing


def background(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A dim random texture: blocky noise, stripes or a checkerboard, in two random dark colours."""
    kind = int(rng.integers(0, 3))
    a = rng.integers(0, 70, size=3).astype(np.float32)
    b = rng.integers(0, 70, size=3).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    if kind == 0:
        cell = int(rng.integers(2, 6))
        noise = rng.random((size // cell + 1, size // cell + 1))
        mix = np.repeat(np.repeat(noise, cell, 0), cell, 1)[:size, :size]
    elif kind == 1:
        angle, period = rng.uniform(0, math.pi), rng.uniform(3, 8)
        mix = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
    else:
        cell = int(rng.integers(3, 8))
        mix = ((xx // cell + yy // cell) % 2).astype(np.float32)
    return a[None, None] * (1 - mix[..., None]) + b[None, None] * mix[..., None]


def shape_mask(shape: str, cx: float, cy: float, radius: float, angle: float, size: int = SIZE) -> np.ndarray:
    """Anti-aliased coverage (H x W float in [0, 1]) of ``shape`` at centre, radius, angle (radians)."""
    from PIL import Image, ImageDraw

    big = size * SUPERSAMPLE
    cos, sin = math.cos(angle), math.sin(angle)
    points = [((cx + radius * (x * cos - y * sin)) * SUPERSAMPLE, (cy + radius * (x * sin + y * cos)) * SUPERSAMPLE)
              for x, y in SHAPES[shape]]
    canvas = Image.new("L", (big, big), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    return np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32) / 255.0


def fill_pattern(fill: str, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Brightness multiplier of the object's surface (H x W)."""
    yy, xx = np.mgrid[0:size, 0:size]
    if fill == "striped":
        angle = rng.uniform(0, math.pi)
        return 0.65 + 0.35 * np.sign(np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / 4))
    if fill == "dotted":
        return np.where(((xx % 3) == 0) & ((yy % 3) == 0), 0.4, 1.0)
    return np.ones((size, size))


def compose(base: np.ndarray, mask: np.ndarray, colour: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    surface = colour[None, None] * pattern[..., None]
    out = base * (1 - mask[..., None]) + surface * mask[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.clip(np.array(rgb, dtype=np.float32) + rng.normal(0, 12, 3), 0, 255)


# --------------------------------------------------------------------------- images


def shape_image(shape: str, seed: int, size: int = SIZE) -> np.ndarray:
    """One picture of ``shape``: random colour, fill, size, position, tilt (+-23 degrees) and background."""
    rng = np.random.default_rng(seed)
    colour = _jitter(rng, list(COLOURS.values())[int(rng.integers(len(COLOURS)))])
    fill = FILLS[int(rng.integers(len(FILLS)))]
    radius = rng.uniform(0.18, 0.34) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    angle = rng.uniform(-0.4, 0.4)  # roughly upright: the features stay orientation-aware
    return compose(background(rng, size), shape_mask(shape, cx, cy, radius, angle, size), colour,
                   fill_pattern(fill, rng, size))


def image_splits(sizes: Sizes, seed: int = 0) -> dict[str, dict[str, list[np.ndarray]]]:
    """split -> shape -> pictures, every picture from its own seed."""
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for s, (split, count) in enumerate(sizes.images.items()):
        out[split] = {shape: [shape_image(shape, _seed(seed, 1, s, c, i)) for i in range(count)]
                      for c, shape in enumerate(SHAPES)}
    return out


# --------------------------------------------------------------------------- videos


@dataclass(frozen=True)
class ClipSpec:
    """What one clip shows: the object and its per-frame states (cx, cy, radius, angle)."""

    shape: str
    colour_name: str
    fill: str
    states: np.ndarray  # T x 4


def forward_states(pair: str, rng: np.random.Generator, frames: int, size: int = SIZE) -> np.ndarray:
    """States of the FIRST class of ``pair`` (right, down, clockwise, approaching), T x 4."""
    t = np.linspace(0.0, 1.0, frames)
    radius = rng.uniform(0.2, 0.26) * size
    angle = rng.uniform(0, 2 * math.pi)
    cx, cy = rng.uniform(radius, size - radius, 2)
    states = np.tile(np.array([cx, cy, radius, angle]), (frames, 1))
    if pair in ("horizontal", "vertical"):  # across most of the frame
        travel = rng.uniform(0.45, 0.6) * size
        lo = rng.uniform(radius * 0.7, size - radius * 0.7 - travel)
        states[:, 0 if pair == "horizontal" else 1] = lo + travel * t
    elif pair == "rotation":  # 135 to 180 degrees
        states[:, 3] = angle + rng.uniform(0.75, 1.0) * math.pi * t
    elif pair == "depth":  # 2.5 to 3 times bigger
        small = rng.uniform(0.11, 0.14) * size
        big = small * rng.uniform(2.5, 3.0)
        cx, cy = rng.uniform(big * 0.7, size - big * 0.7, 2)
        states[:, 0], states[:, 1] = cx, cy
        states[:, 2] = small * (big / small) ** t  # geometric growth: constant apparent speed
    else:
        raise ValueError(f"unknown motion pair {pair!r}")
    return states


def motion_clip(motion: str, seed: int, frames: int = 8, size: int = SIZE) -> np.ndarray:
    """Frames (T x H x W x 3 uint8) of ``motion``; the two classes of a pair share ``seed``'s draws.

    ``motion_clip(second, s)`` is exactly ``motion_clip(first, s)[::-1]``.
    """
    pair = next(p for p, classes in PAIRS.items() if motion in classes)
    spec = clip_spec(pair, seed, frames, size)
    states = spec.states if motion == PAIRS[pair][0] else spec.states[::-1]
    return render_clip(spec, states, seed, size)


def clip_spec(pair: str, seed: int, frames: int = 8, size: int = SIZE) -> ClipSpec:
    """The object and forward states of one clip of ``pair`` (drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    shape = VIDEO_SHAPES[int(rng.integers(len(VIDEO_SHAPES)))]
    colour_name = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    fill = FILLS[int(rng.integers(len(FILLS)))]
    return ClipSpec(shape, colour_name, fill, forward_states(pair, rng, frames, size))


def render_clip(spec: ClipSpec, states: np.ndarray, seed: int, size: int = SIZE) -> np.ndarray:
    """Draw ``states`` over one static background; background, colour and fill come from ``seed``."""
    rng = np.random.default_rng(seed + 1)
    base = background(rng, size)
    colour = _jitter(rng, COLOURS[spec.colour_name])
    pattern = fill_pattern(spec.fill, rng, size)
    return np.stack([compose(base, shape_mask(spec.shape, *state, size=size), colour, pattern)
                     for state in states])


def video_clips(sizes: Sizes, seed: int = 0) -> tuple[list, dict[str, list[str]]]:
    """SSv2-style clips ``(id, template, placeholders, frames)`` and split -> ids.

    For every seed both classes of its pair are written: the clip and its time reversal.
    """
    clips, splits = [], {}
    total = 2 * len(PAIRS) * sum(sizes.clips.values())
    # Ids in a random order, as in SSv2: shards (written in id order) then mix the classes.
    numbers = iter(100000 + np.random.default_rng(seed).permutation(total))
    for s, (split, count) in enumerate(sizes.clips.items()):
        ids: list[str] = []
        for p, (pair, (first, second)) in enumerate(PAIRS.items()):
            for i in range(count):
                clip_seed = _seed(seed, 2, s, p, i)
                spec = clip_spec(pair, clip_seed, sizes.frames)
                for motion, states in ((first, spec.states), (second, spec.states[::-1])):
                    frames = render_clip(spec, states, clip_seed)
                    name = f"{spec.colour_name} {spec.fill} {spec.shape}"
                    clip_id = str(next(numbers))
                    clips.append((clip_id, TEMPLATES[motion], [name], frames))
                    ids.append(clip_id)
        splits[split] = ids
    return clips, splits


def write_datasets(root: Path, sizes: Sizes, seed: int = 0) -> tuple[Path, Path]:
    """Write the image folder and the SSv2-layout video set under ``root``; returns both roots."""
    image_root = write_image_folder(root / "images", image_splits(sizes, seed), ext="png")
    clips, splits = video_clips(sizes, seed)
    video_root = write_ssv2_layout(root / "ssv2", clips, splits, unlabelled=())
    return image_root, video_root


def _seed(*parts: int) -> int:
    value = 0
    for part in parts:
        value = (value * 1_000_003 + int(part) + 7) % (1 << 62)
    return value


def class_counts(sizes: Sizes) -> dict[str, Sequence[int]]:
    """Samples per split for both datasets (for the report)."""
    return {
        "images": [sizes.images[s] * len(SHAPES) for s in sizes.images],
        "clips": [sizes.clips[s] * len(MOTIONS) for s in sizes.clips],
    }
