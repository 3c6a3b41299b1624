"""Generic class folders: ``<root>/<split>/<class>/<file>``, for images or videos."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from adaptcli.data.sources.base import (DataSource, Found, Item, Listing, SourceOptions, require_dir,
    sanitise_key, select_splits, unique_keys)
from adaptcli.errors import AdaptError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
VIDEO_EXTS = {".webm", ".mp4", ".avi", ".mkv", ".mov"}


def list_folder(src: str | Path, modality: str, splits: list[str] | None = None) -> Listing:
    """``<root>/<split>/<class>/<file>``; classes are the sorted union of class folder names."""
    src = require_dir(Path(src), "dataset root")
    exts = VIDEO_EXTS if modality == "video" else IMAGE_EXTS
    available = sorted(p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    chosen = select_splits(available, splits, str(src))
    if not chosen:
        raise AdaptError(f"{src} has no split folders (expected <root>/<split>/<class>/<file>)")
    classes = sorted({c.name for s in chosen for c in (src / s).iterdir() if c.is_dir()})
    if not classes:
        raise AdaptError(f"{src} has no class folders (expected <root>/<split>/<class>/<file>)")
    index = {name: i for i, name in enumerate(classes)}
    listing = Listing(f"{modality}folder", modality, classes, {})  # type: ignore[arg-type]
    for split in chosen:
        items = []
        for name in sorted(c.name for c in (src / split).iterdir() if c.is_dir()):
            for path in sorted((src / split / name).rglob("*")):
                if path.is_file() and path.suffix.lower() in exts:
                    rel = path.relative_to(src / split)
                    items.append(Item(key=sanitise_key(str(rel.with_suffix(""))), label=index[name],
                                      path=str(path), meta={"file": str(rel)}))
        listing.splits[split] = unique_keys(items)
    return listing


def find(src: Path, opts: SourceOptions, modality: str) -> Found:
    return Found([(None, list_folder(src, modality, opts.splits))])


SOURCES = (
    DataSource("imagefolder", "images in <root>/<split>/<class>/<file>", partial(find, modality="image")),
    DataSource("videofolder", "videos in <root>/<split>/<class>/<file>", partial(find, modality="video")),
)
