"""Image bytes for the shards: source JPEG/PNG kept as they are, anything else re-encoded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


class BadImage(Exception):
    """An image that cannot be decoded; the message is the reason recorded in the manifest."""


def encode_image_file(path: str | Path, quality: int = 95) -> tuple[str, bytes, tuple[int, int]]:
    """Return (extension, bytes, (width, height)) after decoding the whole image to check it.

    8-bit JPEG/PNG bytes are kept as they are; anything else is re-encoded: 16-bit and float
    images are scaled to 8 bits over their type's full range (never clipped), others become JPEG.
    Pillow's decompression-bomb guard makes an oversized image a :class:`BadImage` like any other.
    """
    from adaptcli.files import MAX_IMAGE_BYTES, read_bounded

    try:
        return encode_image_bytes(read_bounded(path, MAX_IMAGE_BYTES), quality)
    except OSError as exc:
        raise BadImage(f"unreadable image: {type(exc).__name__}: {exc}") from None


def encode_embedded_image(path: str | Path, offset: int, length: int, scale: int = 1,
                          quality: int = 95) -> tuple[str, bytes, tuple[int, int]]:
    """:func:`encode_image_file` of the ``length`` bytes at ``offset`` of ``path`` (an image inside a
    TFRecord); ``scale`` != 1 multiplies the pixel values (clipped to 255) and stores lossless PNG."""
    from adaptcli.files import MAX_IMAGE_BYTES, open_regular

    if length > MAX_IMAGE_BYTES:
        raise BadImage(f"embedded image of {length:,} bytes (more than {MAX_IMAGE_BYTES:,})")
    with open_regular(path) as handle:
        handle.seek(offset)
        data = handle.read(length)
    if len(data) != length:
        raise BadImage(f"file ends inside the embedded image ({len(data):,} of {length:,} bytes)")
    if scale == 1:
        return encode_image_bytes(data, quality)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint16) * scale
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"unreadable image: {type(exc).__name__}: {exc}") from None
    return encode_array(np.minimum(array, 255).astype(np.uint8))


def encode_image_bytes(data: bytes, quality: int = 95) -> tuple[str, bytes, tuple[int, int]]:
    """:func:`encode_image_file` of an image's bytes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.load()
            size = image.size
            if image.mode in WIDE_MODES:
                return "png", _png(_to_8bit(image)), size
            if fmt in ("JPEG", "PNG"):
                return ("jpg" if fmt == "JPEG" else "png"), data, size
            rgb = image.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise BadImage(f"image too large (decompression bomb guard): {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"unreadable image: {type(exc).__name__}: {exc}") from None
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=quality)
    return "jpg", buffer.getvalue(), size


#: Pillow modes with more than 8 bits per channel (``I;16`` and its byte orders, 32-bit int and float).
WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def _to_8bit(image) -> "Image.Image":
    """A grey 8-bit image: 16-bit values divided by 257 (65535 -> 255), 32-bit int and float scaled
    from the type's range; a float image in [0, 1] is taken as such."""
    from PIL import Image

    array = np.asarray(image)
    if image.mode.startswith("I;16"):
        scaled = array.astype(np.float64) / 257.0
    elif image.mode == "F":
        top = 1.0 if float(array.max(initial=0.0)) <= 1.0 else 65535.0
        scaled = array.astype(np.float64) / top * 255.0
    else:  # "I": 32-bit ints, in practice 16-bit values widened by Pillow
        scaled = array.astype(np.float64) / (65535.0 if array.max(initial=0) <= 65535 else 2**32 - 1) * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L").convert("RGB")


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def encode_array(array: np.ndarray) -> tuple[str, bytes, tuple[int, int]]:
    """An H x W x 3 uint8 array as lossless PNG (CIFAR, SVHN)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return "png", buffer.getvalue(), image.size


__all__ = ["BadImage", "encode_image_file", "encode_image_bytes", "encode_embedded_image", "encode_array"]
