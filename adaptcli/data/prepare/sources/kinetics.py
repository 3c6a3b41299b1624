"""Kinetics-400/600/700 as distributed: annotation CSVs ``train.csv``, ``validate.csv`` and ``test.csv``
(columns ``label,youtube_id,time_start,time_end,split``, in ROOT or ROOT/annotations) and clips named
``{youtube_id}_{time_start:06d}_{time_end:06d}.<ext>`` anywhere under ROOT (``train/``, ``val/``,
class folders: all found), or under ``--videos DIR``.

Splits: ``train`` (train.csv), ``validation`` (validate.csv), ``test`` (test.csv, when present). Classes
are the sorted labels of every CSV read. Many YouTube videos are gone: a listed clip with no file is
skipped, counted and listed in ``dataset.json``, as for SSv2.
"""

from __future__ import annotations

import os
from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, hidden, missing,
    read_csv_rows, require_dir, sanitise_key, select_splits, unique_keys)
from adaptcli.data.prepare.sources.folders import VIDEO_EXTS
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

CSVS = {"train": "train.csv", "validation": "validate.csv", "test": "test.csv"}
COLUMNS = ("label", "youtube_id", "time_start", "time_end")
LAYOUT = "label,youtube_id,time_start,time_end,split"


def clip_name(row: dict[str, str], where: str) -> str:
    """``{youtube_id}_{start:06d}_{end:06d}`` of an annotation row."""
    try:
        start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except ValueError:
        raise AdaptError(f"{where}: time_start/time_end {row['time_start'][:20]!r}/{row['time_end'][:20]!r} are not "
                         "seconds") from None
    if not row["youtube_id"] or start < 0 or end < start:
        raise AdaptError(f"{where}: a row needs a youtube_id and 0 <= time_start <= time_end")
    return f"{row['youtube_id']}_{start:06d}_{end:06d}"


def index_videos(root: Path) -> dict[str, Path]:
    """Every video file under ``root`` by its name without suffix (hidden folders skipped)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not hidden(d))
        for name in sorted(files):
            path = Path(folder) / name
            if path.suffix.lower() in VIDEO_EXTS and not hidden(name):
                found.setdefault(path.stem, path)
    return found


def find(src: Path, opts: SourceOptions) -> Found:
    root = require_dir(Path(src), "Kinetics root")
    notes_dir = root / "annotations" if (root / "annotations" / "train.csv").is_file() else root
    available = [split for split, name in CSVS.items() if (notes_dir / name).is_file()]
    if not available:
        raise AdaptError(f"no Kinetics annotation CSVs ({', '.join(CSVS.values())}) in {root} or {root / 'annotations'}")
    chosen = select_splits(available, opts.splits, "kinetics")
    rows = {split: read_csv_rows(notes_dir / CSVS[split], "kinetics", COLUMNS, LAYOUT) for split in chosen}
    classes = sorted({row["label"] for found in rows.values() for row in found if row["label"]})
    if len(classes) < 2:
        raise AdaptError(f"the Kinetics CSVs in {notes_dir} name {len(classes)} class(es); pass the release's CSVs")
    index = {name: i for i, name in enumerate(classes)}
    videos = index_videos(require_dir(Path(opts.videos), "Kinetics video folder") if opts.videos else root)
    listing = Listing("kinetics", "video", classes, {s: [] for s in chosen}, settings={"classes": len(classes)})
    for split in chosen:
        for number, row in enumerate(rows[split], 2):
            where = f"{notes_dir / CSVS[split]}, line {number}"
            name = clip_name(row, where)
            key = sanitise_key(name)
            path = videos.get(name)
            if path is None:
                listing.skipped.append(missing(split, key, f"{name}.*", "no video file"))
                continue
            label = index[row["label"]] if row["label"] else None
            listing.splits[split].append(Item(key=key, label=label, path=str(path),
                                              meta={"youtube_id": row["youtube_id"], "label": row["label"]}))
        listing.splits[split] = unique_keys(sorted(listing.splits[split], key=lambda i: i.key))
    notes = [f"kinetics: {len(listing.skipped)} listed clips have no video file and are skipped "
             f"(first: {listing.skipped[0]['key']})"] if listing.skipped else []
    return Found([(None, listing)], notes=notes)


register(DataSource("kinetics", "Kinetics-400/600/700 as distributed: train.csv/validate.csv/test.csv and clips "
                    "named {youtube_id}_{start:06d}_{end:06d} (--videos DIR)", find, order=22))
