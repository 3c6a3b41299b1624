"""Image bytes for the shards: source JPEG/PNG kept as they are, anything else re-encoded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


class BadImage(Exception):
    """An image that cannot be decoded; the message is the reason recorded in the manifest."""


def encode_image_file(path: str | Path, quality: int = 95) -> tuple[str, bytes, tuple[int, int]]:
    """Return (extension, bytes, (width, height)) after decoding the whole image to check it."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.load()
            size = image.size
            if fmt in ("JPEG", "PNG"):
                return ("jpg" if fmt == "JPEG" else "png"), data, size
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"unreadable image: {type(exc).__name__}: {exc}") from None
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=quality)
    return "jpg", buffer.getvalue(), size


def encode_array(array: np.ndarray) -> tuple[str, bytes, tuple[int, int]]:
    """An H x W x 3 uint8 array as lossless PNG (CIFAR, SVHN)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return "png", buffer.getvalue(), image.size


__all__ = ["BadImage", "encode_image_file", "encode_array"]
