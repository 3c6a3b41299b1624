"""``data.decode: cuda``: the loader workers only read and sample a clip's JPEG bytes and draw its crop box
and flip; decode, crop + resize, flip and normalisation run on the batch in the training process, on the
training device (nvJPEG through ``torchvision.io.decode_jpeg(..., device="cuda")``).

The resize reproduces Pillow's antialiased bilinear ``Image.resize(size, BILINEAR, box=...)`` that the
worker path uses (:func:`adaptcli.data.stream.transforms.render`): the same filter taps, the same 22-bit
fixed-point coefficients (from the box as 32-bit floats), one pass per axis with its result rounded to
8 bits, each summed exactly (float64 holds every partial sum of 8-bit pixels times 22-bit weights); the
normalisation uses the same float32 table as :func:`adaptcli.data.stream.transforms.normalise`.

The passes run in the order the installed Pillow uses (Pillow 13 runs the vertical pass first when the
height shrinks by more than twice as many pixels as the width; earlier releases always go horizontal
first), since the 8-bit rounding between them makes the order visible. The result is bit-identical to
Pillow on the same decoded pixels (``tests/data/test_batch_decode.py``). Where the two paths can differ:

- the JPEG decoder: libjpeg-turbo on the CPU decodes like Pillow's libjpeg-turbo (identical pixels in
  ``benchmarks/feed.py``); nvJPEG may round its colour conversion differently;
- a box shrunk more than 2x (stored frames much larger than the model's input, e.g. 720p kept as-is):
  the worker path lets libjpeg decode at 1/2, 1/4 or 1/8 scale (``draft``), this path decodes at full
  size and filters it down.

Why not ``torch.nn.functional.interpolate(antialias=True)``: it takes no sub-pixel box, and cropping to
whole pixels first changed border pixels by up to 38 levels against Pillow (``benchmarks/feed.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

#: Pillow's fixed-point precision for 8-bit resampling (``PRECISION_BITS`` in Resample.c).
PRECISION_BITS = 32 - 8 - 2


@dataclass
class EncodedClip:
    """What a worker hands over for one sample: its chosen frames' file bytes, box and flip."""

    frames: list[bytes]
    box: tuple[float, float, float, float]
    flip: bool


@dataclass
class EncodedFrames:
    """A training batch's chosen frames still as file bytes (``data.decode: cuda``): every frame's bytes
    in one uint8 tensor (pinnable) with offsets, each clip's box and flip, and what decoding needs."""

    data: torch.Tensor  # uint8: the frames' file bytes back to back
    offsets: torch.Tensor  # int64: frame i is data[offsets[i]:offsets[i + 1]]
    boxes: torch.Tensor  # B x 4 float64: each clip's crop box in source pixels
    flips: list[bool]
    frames: int  # frames per clip
    size: int  # output side in pixels
    mean: tuple[float, ...]
    std: tuple[float, ...]
    video: bool

    def pin_memory(self) -> EncodedFrames:
        """The tensors page-locked (the DataLoader calls this with ``pin_memory=True``)."""
        return dataclasses.replace(self, data=self.data.pin_memory(), offsets=self.offsets.pin_memory(),
                                   boxes=self.boxes.pin_memory())

    def decode(self, device: torch.device | str) -> torch.Tensor:
        """The normalised inputs on ``device`` (:func:`decode_batch`)."""
        return decode_batch(self, device)


def resize_weights(in_size: int, start: float, end: float, out_size: int) -> np.ndarray:
    """``out_size x in_size`` fixed-point weights of Pillow's antialiased bilinear resample of the
    source span ``[start, end)`` (``precompute_coeffs`` and ``normalize_coeffs_8bpc`` in Resample.c,
    whose box arrives as 32-bit floats: the span is rounded to them first)."""
    start32, end32 = np.float32(start), np.float32(end)  # Pillow passes the box as C floats
    start, scale = float(start32), float(np.float32(end32 - start32)) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # bilinear support 1
    inverse = 1.0 / filterscale
    weights = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):
        center = start + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) * inverse)) for x in range(xmax)]
        total = sum(taps)
        for x, w in enumerate(taps):
            w = w / total if total != 0.0 else w
            weights[xx, xmin + x] = int(0.5 + w * (1 << PRECISION_BITS))  # bilinear weights are >= 0
    return weights


def _round_8bit(acc: torch.Tensor) -> torch.Tensor:
    """Pillow's ``clip8`` of a fixed-point sum that already holds the rounding half."""
    return torch.floor(acc / (1 << PRECISION_BITS)).clamp_(0, 255)


def vertical_first(width: int, height: int, size: int) -> bool:
    """Whether the installed Pillow resizes ``width x height`` to ``size x size`` vertical pass first."""
    from PIL import __version__

    if int(__version__.split(".")[0]) < 13:
        return False
    return (height - size) > 0 and (height - size) > (width - size) * 2


def resample(frames: torch.Tensor, box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """``... x H x W`` uint8 (channels first) cropped to ``box`` and resized to ``size x size`` exactly as
    Pillow's ``resize((size, size), BILINEAR, box=box)``; returns uint8 on the same device."""
    height, width = frames.shape[-2:]
    device = frames.device
    wx = torch.from_numpy(resize_weights(width, box[0], box[2], size)).to(device, torch.float64)
    wy = torch.from_numpy(resize_weights(height, box[1], box[3], size)).to(device, torch.float64)
    half = float(1 << (PRECISION_BITS - 1))
    x = frames.to(torch.float64)
    if vertical_first(width, height, size):
        down = _round_8bit(torch.matmul(wy, x) + half)  # ... x size x W
        return _round_8bit(torch.matmul(down, wx.T) + half).to(torch.uint8)
    across = _round_8bit(torch.matmul(x, wx.T) + half)  # ... x H x size
    return _round_8bit(torch.matmul(wy, across) + half).to(torch.uint8)


def _decode(chunks: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """3 x H x W uint8 RGB images: JPEGs on ``device`` (nvJPEG on CUDA), anything else (PNG) on the CPU."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    jpeg = [i for i, c in enumerate(chunks) if c[:2].tolist() == [0xFF, 0xD8]]
    images: list[torch.Tensor | None] = [None] * len(chunks)
    if jpeg:
        decoded = decode_jpeg([chunks[i] for i in jpeg], mode=ImageReadMode.RGB, device=device)
        for i, image in zip(jpeg, decoded):
            images[i] = image
    for i, image in enumerate(images):
        if image is None:
            images[i] = decode_image(chunks[i], mode=ImageReadMode.RGB).to(device)
    return images  # type: ignore[return-value]


def normalise_on(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``... x 3 x ...`` uint8 (channels at dim 1) to float32 through the same 256-entry table per
    channel as :func:`adaptcli.data.stream.transforms.normalise` (bit-identical values)."""
    table = (torch.arange(256, dtype=torch.float32)[:, None] - torch.tensor(mean, dtype=torch.float32) * 255) \
        * (1 / (torch.tensor(std, dtype=torch.float32) * 255))
    table = table.T.contiguous().to(frames.device)  # 3 x 256
    index = frames.long()
    out = torch.empty(frames.shape, dtype=torch.float32, device=frames.device)
    for c in range(3):
        out[:, c] = table[c][index[:, c]]
    return out


def decode_batch(encoded: EncodedFrames, device: torch.device | str) -> torch.Tensor:
    """The normalised inputs of an encoded batch on ``device``: video ``B x 3 x T x S x S``, images
    ``B x 3 x S x S``."""
    device = torch.device(device)
    data, offsets = encoded.data, encoded.offsets.tolist()
    chunks = [data[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    images = _decode(chunks, device)
    count, size = encoded.frames, encoded.size
    clips = []
    for b, box in enumerate(encoded.boxes.tolist()):
        frames = torch.stack(images[b * count:(b + 1) * count])  # T x 3 x H x W
        out = resample(frames, tuple(box), size)
        if encoded.flips[b]:
            out = out.flip(-1)
        clips.append(out)
    stacked = torch.stack(clips)  # B x T x 3 x S x S
    if encoded.video:
        return normalise_on(stacked.transpose(1, 2), encoded.mean, encoded.std)  # B x 3 x T x S x S
    return normalise_on(stacked[:, 0], encoded.mean, encoded.std)


def boxes_shrunk_beyond_draft(box: tuple[float, float, float, float], size: int) -> bool:
    """Whether the worker path would let libjpeg decode this box at reduced scale (see the module doc)."""
    return size / max(1.0, min(box[2] - box[0], box[3] - box[1])) < 0.5


__all__ = ["EncodedClip", "EncodedFrames", "boxes_shrunk_beyond_draft", "decode_batch", "normalise_on", "resample",
           "resize_weights"]
