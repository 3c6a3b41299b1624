"""Spatial transforms on decoded frames: a crop box in source pixels, then one PIL resize.

Every frame of a clip gets the same box and flip. A box is ``(x0, y0, x1, y1)`` in source pixels;
``render`` crops and resizes in one step (``Image.resize(box=...)``, antialiased bilinear), and
``render`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the box is shrunk that much anyway.
"""

from __future__ import annotations

import io
import math
import random
from typing import Literal

import numpy as np

Box = tuple[float, float, float, float]
Augment = Literal["random_resized_crop", "resize", "resize_crop"]


def random_resized_box(width: int, height: int, scale: tuple[float, float], rng: random.Random,
                       ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Box:
    """Inception-style crop: a random area fraction in ``scale`` and aspect ratio in ``ratio``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            x0 = rng.randint(0, width - w)
            y0 = rng.randint(0, height - h)
            return (x0, y0, x0 + w, y0 + h)
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    x0, y0 = (width - w) // 2, (height - h) // 2
    return (x0, y0, x0 + w, y0 + h)


def square_box(width: int, height: int, side: float, rng: random.Random | None = None,
               position: float = 0.5) -> Box:
    """A ``side`` x ``side`` square: random position (``rng``) or at ``position`` (0 start, 1 end)."""
    side = min(side, width, height)
    if rng is not None:
        x0, y0 = rng.uniform(0, width - side), rng.uniform(0, height - side)
    else:
        x0, y0 = (width - side) * position, (height - side) * position
        if width >= height:  # the position slides along the long side only
            y0 = (height - side) / 2
        else:
            x0 = (width - side) / 2
    return (x0, y0, x0 + side, y0 + side)


def train_box(augment: Augment, width: int, height: int, size: int, crop_scale: tuple[float, float],
              crop_pct: float, rng: random.Random) -> Box:
    """The random box of one training sample."""
    if augment == "random_resized_crop":
        return random_resized_box(width, height, crop_scale, rng)
    if augment == "resize":
        return (0, 0, width, height)
    # resize_crop: short side to size / crop_pct, then a random size x size crop
    return square_box(width, height, min(width, height) * crop_pct, rng)


def eval_boxes(augment: Augment, width: int, height: int, crops: int, crop_pct: float) -> list[Box]:
    """Deterministic boxes: 1 crop = centre (short side to size/crop_pct), 3 = along the long side."""
    if crops == 1:
        if augment == "resize":
            return [(0, 0, width, height)]
        return [square_box(width, height, min(width, height) * crop_pct)]
    short = min(width, height)  # VideoMAE multi-crop: short side to size, crops cover the long side
    return [square_box(width, height, short, position=i / (crops - 1)) for i in range(crops)]


def open_image(data: bytes):  # -> PIL.Image.Image
    """Open (not yet decode) JPEG/PNG bytes."""
    from PIL import Image

    return Image.open(io.BytesIO(data))


def render(image, box: Box, size: int, flip: bool = False) -> np.ndarray:
    """Crop ``box`` and resize to ``size`` x ``size``; returns H x W x 3 uint8."""
    from PIL import Image

    full = image.size
    if image.format == "JPEG" and image.mode in ("RGB", "L"):
        scale = size / max(1.0, min(box[2] - box[0], box[3] - box[1]))
        if scale < 0.5:
            image.draft("RGB", (math.ceil(full[0] * scale), math.ceil(full[1] * scale)))
    if image.size != full:
        fx, fy = image.size[0] / full[0], image.size[1] / full[1]
        box = (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
    if image.mode != "RGB":
        image = image.convert("RGB")
    out = image.resize((size, size), Image.BILINEAR, box=box)
    if flip:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out)


def _shared_empty(shape: tuple[int, ...]):  # -> torch.Tensor
    """An uninitialised float32 tensor allocated in shared memory, so that a loader worker's batch
    reaches the main process without another copy. Allocated there directly: ``share_memory_()`` on a
    fresh tensor would fault in private pages and then copy them into new shared ones (twice the page
    faults, about 2.4 ms more per 8-frame 224 clip on a 2-core VM)."""
    import torch

    new_shared = getattr(torch.UntypedStorage, "_new_shared", None)  # what torch's own reductions use
    if new_shared is None:
        return torch.empty(shape, dtype=torch.float32).share_memory_()
    return torch.empty(0, dtype=torch.float32).set_(new_shared(4 * math.prod(shape)), 0, shape)


def normalise(frames: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], video: bool,
              shared: bool = False):  # -> torch.Tensor
    """Uint8 frames, channels last, to a normalised float tensor with channels moved forward.

    Video ``... x T x H x W x 3`` becomes ``... x 3 x T x H x W``; images ``... x H x W x 3``
    become ``... x 3 x H x W``. Each value is ``(v - 255 * mean) / (255 * std)`` in float32, read
    from a 256-entry table per channel (the same float32 operations, done once per value instead of
    once per pixel: about 2x faster than computing it, and bit-identical). Done in numpy: for
    tensors of this size torch's intra-op threads only slow it down, and it runs in the loader
    workers anyway. ``shared`` allocates the result in shared memory (for a DataLoader worker).
    """
    import torch

    lead = frames.ndim - (4 if video else 3)
    shape = frames.shape[:lead] + (3,) + frames.shape[lead:-1]
    out = _shared_empty(shape) if shared else torch.empty(shape, dtype=torch.float32)
    x = out.numpy()
    tables = (np.arange(256, dtype=np.float32)[:, None] - np.asarray(mean, np.float32) * 255) \
        * (1 / (np.asarray(std, np.float32) * 255))
    for c in range(3):
        np.take(np.ascontiguousarray(tables[:, c]), frames[..., c], out=x[(slice(None),) * lead + (c,)])
    return out


__all__ = ["Box", "random_resized_box", "square_box", "train_box", "eval_boxes", "open_image", "render",
           "normalise"]
