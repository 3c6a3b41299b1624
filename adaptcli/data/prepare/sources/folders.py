"""Generic class folders: ``<root>/<split>/<class>/<file>``, for images or videos."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, require_dir,
    sanitise_key, select_splits, subfolders, unique_keys, visible_files)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
VIDEO_EXTS = {".webm", ".mp4", ".avi", ".mkv", ".mov"}


def list_folder(src: str | Path, modality: str, splits: list[str] | None = None,
                allow_empty_classes: bool = False) -> Listing:
    """``<root>/<split>/<class>/<file>``; classes are the sorted union of class folder names.

    Hidden names are skipped, as are shard folders of an earlier ``prepare`` inside ``root``; a class
    folder without a single file of the modality is refused unless ``allow_empty_classes``.
    """
    src = require_dir(Path(src), "dataset root")
    exts = VIDEO_EXTS if modality == "video" else IMAGE_EXTS
    available = [p.name for p in subfolders(src)]
    chosen = select_splits(available, splits, str(src))
    if not chosen:
        raise AdaptError(f"{src} has no split folders (expected <root>/<split>/<class>/<file>)")
    folders = {s: subfolders(src / s) for s in chosen}
    classes = sorted({c.name for found in folders.values() for c in found})
    if not classes:
        raise AdaptError(f"{src} has no class folders (expected <root>/<split>/<class>/<file>)")
    index = {name: i for i, name in enumerate(classes)}
    listing = Listing(f"{modality}folder", modality, classes, {})  # type: ignore[arg-type]
    for split in chosen:
        items = []
        listing.origins[split] = src / split
        for folder in folders[split]:
            files = [p for p in visible_files(folder, split, listing) if p.suffix.lower() in exts]
            if not files and not allow_empty_classes and os.access(folder, os.R_OK | os.X_OK):
                raise AdaptError(f"class folder {folder} has no {modality} files; remove it or pass "
                                 "--allow-empty-classes to keep the class")
            for path in files:
                rel = path.relative_to(src / split)
                items.append(Item(key=sanitise_key(str(rel.with_suffix(""))), label=index[folder.name],
                                  path=str(path), meta={"file": str(rel)}))
        listing.splits[split] = unique_keys(items)
    return listing


def find(src: Path, opts: SourceOptions, modality: str) -> Found:
    return Found([(None, list_folder(src, modality, opts.splits, opts.allow_empty_classes))])


register(DataSource("imagefolder", "images in <root>/<split>/<class>/<file>", partial(find, modality="image"), order=80))
register(DataSource("videofolder", "videos in <root>/<split>/<class>/<file>", partial(find, modality="video"), order=81))
