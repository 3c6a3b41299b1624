"""Spatial transforms on decoded frames: a crop box in source pixels, then one PIL resize.

Every frame of a clip gets the same box and flip. A box is ``(x0, y0, x1, y1)`` in source pixels;
``render`` crops and resizes in one step (``Image.resize(box=...)``, antialiased bilinear), and
``open_jpeg`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the box is shrunk that much anyway.
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


def decode_jpegs(datas: list[bytes]):  # -> list[torch.Tensor]
    """JPEG bytes -> ``3 x H x W`` uint8 tensors.

    libjpeg-turbo through ``torchvision.io.decode_jpeg`` (measured 0.41 ms against PIL's 0.61 ms
    for a 341x256 frame); PIL when that is unavailable (it is deprecated in torchvision 0.29).
    """
    import warnings

    import torch

    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # pragma: no cover - torchvision without image ops
        decode_jpeg = None
    if decode_jpeg is not None:
        tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return decode_jpeg(tensors, mode=ImageReadMode.RGB)
            except RuntimeError:  # e.g. a frame that is not a baseline/progressive JPEG
                pass
    out = []
    for data in datas:
        array = np.asarray(open_image(data).convert("RGB"))
        out.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return out


def render_frames(frames, box: Box, size: int, flip: bool = False) -> np.ndarray:
    """Crop ``box`` from ``T x 3 x H x W`` uint8 frames and resize to ``size``: ``T x size x size x 3``.

    Antialiased bilinear on uint8, channels-last (torch's fast CPU path); the box is rounded to
    whole pixels.
    """
    import torch
    import torch.nn.functional as F

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    crop = frames[:, :, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].contiguous(memory_format=torch.channels_last)
    out = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if flip:
        out = out.flip(-1)
    return out.permute(0, 2, 3, 1).numpy()


def normalise(frames: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], video: bool,
              shared: bool = False):  # -> torch.Tensor
    """Uint8 frames, channels last, to a normalised float tensor with channels moved forward.

    Video ``... x T x H x W x 3`` becomes ``... x 3 x T x H x W``; images ``... x H x W x 3``
    become ``... x 3 x H x W``. Done in numpy, in place: for tensors of this size torch's intra-op
    threads only slow it down, and it runs in the loader workers anyway. ``shared`` allocates the
    result in shared memory (for a DataLoader worker).
    """
    import torch

    lead = frames.ndim - (4 if video else 3)
    order = tuple(range(lead)) + (frames.ndim - 1,) + tuple(range(lead, frames.ndim - 1))
    shape = (3,) + (1,) * (frames.ndim - lead - 1)
    source = frames.transpose(order)
    out = torch.empty(source.shape, dtype=torch.float32)
    if shared:  # a worker's batch goes to the main process without another copy
        out.share_memory_()
    x = out.numpy()
    np.subtract(source, (np.asarray(mean, np.float32) * 255).reshape(shape), out=x, dtype=np.float32)
    x *= (1 / (np.asarray(std, np.float32) * 255)).reshape(shape)
    return out


__all__ = ["decode_jpegs", "render_frames", "Box", "random_resized_box", "square_box", "train_box", "eval_boxes", "open_image", "render",
           "normalise"]
