"""Something-Something v2: webm clips plus JSON label files in either naming."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, missing, read_source_text,
    select_splits)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.data.splits import canonical_split
from adaptcli.errors import AdaptError

SPLITS = ["train", "validation", "test"]
VIDEO_DIR = "20bn-something-something-v2"
UNLABELLED = {"test"}


def find_label_file(roots: list[Path], kind: str) -> Path | None:
    """``labels/<kind>.json`` or ``something-something-v2-<kind>.json`` under any of ``roots``."""
    for root in roots:
        for candidate in (root / "labels" / f"{kind}.json", root / f"{kind}.json",
                          root / f"something-something-v2-{kind}.json",
                          root / "labels" / f"something-something-v2-{kind}.json"):
            if candidate.is_file():
                return candidate
    return None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(read_source_text(path, "ssv2"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AdaptError(f"label file {path} is not valid JSON ({str(exc).splitlines()[0]})") from None


def _class_names(path: Path) -> tuple[list[str], dict[str, int]]:
    data = _load_json(path)
    if not isinstance(data, dict) or not data:
        raise AdaptError(f"label file {path} must map each template to its class index")
    try:
        index = {str(name): int(value) for name, value in data.items()}
    except (TypeError, ValueError):
        raise AdaptError(f"label file {path}: class indices must be integers") from None
    if sorted(index.values()) != list(range(len(index))):
        raise AdaptError(f"label file {path}: class indices must be 0..{len(index) - 1}, each once")
    classes = [""] * len(index)
    for name, i in index.items():
        classes[i] = name
    return classes, index


def list_ssv2(src: str | Path, splits: list[str] | None = None, labels_dir: str | Path | None = None,
              videos_dir: str | Path | None = None) -> Listing:
    """Find the SSv2 label files and clips; ids without a video are recorded as skipped."""
    src = Path(src)
    roots = [Path(labels_dir)] if labels_dir else [src, src / "annotations"]  # mmaction2: data/sthv2/annotations
    videos = Path(videos_dir) if videos_dir else next(
        (src / name for name in (VIDEO_DIR, "videos") if (src / name).is_dir()), src / VIDEO_DIR)
    if not videos.is_dir():
        raise AdaptError(f"SSv2 videos not found: {videos} is not a folder (pass --videos DIR)")
    labels_path = find_label_file(roots, "labels")
    if labels_path is None:
        raise AdaptError(f"SSv2 labels.json not found under {roots[0]} (looked for labels/labels.json and "
                         "something-something-v2-labels.json; pass --labels DIR)")
    classes, index = _class_names(labels_path)
    available = [s for s in SPLITS if find_label_file(roots, s)]
    if splits:
        splits = [canonical_split(s) for s in splits]
        absent = [s for s in splits if s not in SPLITS or not find_label_file(roots, s)]
        if absent:
            raise AdaptError(f"SSv2 label file for split '{absent[0]}' not found under {roots[0]} "
                             f"(found: {', '.join(available) or 'none'})")
    chosen = select_splits(available, splits, "ssv2")
    if not chosen:
        raise AdaptError(f"no SSv2 split files (train.json, validation.json, test.json) under {roots[0]}")
    files = {entry.name for entry in os.scandir(videos) if entry.is_file()}
    # "moving something from left to right" and its mirror are different classes: never flip
    listing = Listing("ssv2", "video", classes, {}, settings={}, hflip=False)
    for split in chosen:
        path = find_label_file(roots, split)
        assert path is not None
        listing.origins[split] = path
        records = _load_json(path)
        if not isinstance(records, list):
            raise AdaptError(f"label file {path} must be a list of clip records")
        items: list[Item] = []
        seen: set[str] = set()
        for n, record in enumerate(records):
            if not isinstance(record, dict) or "id" not in record:
                raise AdaptError(f"label file {path}: record {n} has no 'id'")
            clip_id = str(record["id"])
            if not clip_id.isalnum() or clip_id in seen:
                raise AdaptError(f"label file {path}: record {n} has an invalid or repeated id {clip_id!r}")
            seen.add(clip_id)
            label, meta = None, {}
            if split not in UNLABELLED or "template" in record:
                try:
                    template = str(record["template"])
                    meta = {"label": str(record.get("label", "")), "template": template,
                            "placeholders": list(record.get("placeholders", []))}
                    label = index[template.replace("[", "").replace("]", "")]
                except KeyError as exc:
                    raise AdaptError(f"label file {path}: clip {clip_id} has no class for {exc}") from None
            name = next((f"{clip_id}{ext}" for ext in (".webm", ".mp4") if f"{clip_id}{ext}" in files), None)
            if name is None:
                listing.skipped.append(missing(split, clip_id, videos / f"{clip_id}.webm", "no video file"))
                continue
            items.append(Item(key=clip_id, label=label, path=str(videos / name), meta=meta))
        listing.splits[split] = items
    return listing


def find(src: Path, opts: SourceOptions) -> Found:
    return Found([(None, list_ssv2(src, opts.splits, opts.labels, opts.videos))])


register(DataSource("ssv2", "Something-Something v2 (webm clips, JSON labels; --labels, --videos)", find, order=10))
