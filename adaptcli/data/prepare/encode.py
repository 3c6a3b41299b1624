"""Turn one :class:`Item` into the files of one WebDataset sample (runs in worker processes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from adaptcli.data.prepare.image_encode import BadImage, encode_array, encode_embedded_image, encode_image_file
from adaptcli.data.prepare.sources.base import Item
from adaptcli.data.prepare.video_decode import BadVideo, decode_to_jpeg


@dataclass(frozen=True)
class EncodeOptions:
    """Settings that change the bytes written."""

    modality: Literal["image", "video"]
    short_side: int | None = 256
    quality: int = 90
    fps: float | None = None  # video: store frames at this rate at most (None: every frame)


@dataclass
class Encoded:
    """The files of one sample, in tar order (``__key__`` is added by the writer)."""

    key: str
    files: list[tuple[str, bytes]]
    frames: int | None = None


@dataclass
class Skipped:
    """A sample that could not be decoded."""

    key: str
    path: str
    reason: str


def frame_name(index: int) -> str:
    """``000.jpg``, ``001.jpg``, ... (more digits past 999)."""
    return f"{index:03d}.jpg"


def _record(item: Item, extra: dict[str, Any]) -> bytes:
    record = {"id": item.key, **item.meta, **extra}
    return json.dumps(record, sort_keys=True).encode()


def _label_files(item: Item) -> list[tuple[str, bytes]]:
    """``cls``: the class index; multi-label samples store ``labels``: a JSON list of indices."""
    if item.label is None:
        return []
    if isinstance(item.label, list):
        return [("labels", json.dumps(sorted(item.label)).encode())]
    return [("cls", str(item.label).encode())]


def encode_item(item: Item, options: EncodeOptions) -> Encoded | Skipped:
    """Decode and encode one item; a bad input becomes :class:`Skipped` with its reason."""
    try:
        if options.modality == "video":
            assert item.path is not None
            clip = decode_to_jpeg(item.path, options.short_side, options.quality, options.fps)
            files = [(frame_name(i), data) for i, data in enumerate(clip.frames)]
            meta = {"frames": len(clip.frames), "fps": clip.fps, "stored_fps": clip.stored_fps,
                    "size": list(clip.source_size),
                    "stored_size": list(clip.stored_size)}
            files += _label_files(item) + [("json", _record(item, meta))]
            return Encoded(item.key, files, frames=len(clip.frames))
        if item.array is not None:
            ext, data, size = encode_array(item.array)
        elif item.embedded is not None:
            assert item.path is not None
            ext, data, size = encode_embedded_image(item.path, item.embedded.offset, item.embedded.length,
                                                    item.embedded.scale, quality=max(options.quality, 90))
        else:
            assert item.path is not None
            ext, data, size = encode_image_file(item.path, quality=max(options.quality, 90))
        files = [(ext, data)] + _label_files(item) + [("json", _record(item, {"size": list(size)}))]
        return Encoded(item.key, files)
    except (BadVideo, BadImage) as exc:
        return Skipped(item.key, item.path or "", str(exc))
    except OSError as exc:
        return Skipped(item.key, item.path or "", f"unreadable: {exc.strerror or exc}")


__all__ = ["EncodeOptions", "Encoded", "Skipped", "encode_item", "frame_name"]
