"""Kinetics-400/600/700 as users have it: annotation CSVs (columns ``label,youtube_id,time_start,time_end,split``;
``label`` may be absent from an unlabelled test CSV) in ROOT or ROOT/annotations, named

- ``train.csv``, ``validate.csv``, ``test.csv`` (the DeepMind release),
- ``kinetics-400_train.csv``, ``kinetics-400_val.csv``, ``kinetics-400_test.csv`` (the ActivityNet crawler's data/),
- ``train.csv``, ``val.csv``, ``test.csv`` (CVDF's kinetics-dataset),
- ``kinetics_train.csv``, ``kinetics_val.csv``, ``kinetics_test.csv`` (mmaction2's download_annotations.sh),

and clips named ``{youtube_id}_{time_start:06d}_{time_end:06d}.<ext>`` anywhere under ROOT (CVDF's flat
``train/``, ``val/``; the crawler's ``train/<class name>/``; mmaction2's ``videos_train/<class_name>/``),
or under ``--videos DIR``.

A CSV's split is the split its name names (:func:`adaptcli.data.splits.split_named_in`): train, validation,
test. Classes are the sorted labels of every CSV read. Many YouTube videos are gone: a listed clip with no
file is skipped, counted and listed in ``dataset.json``, as for SSv2.
"""

from __future__ import annotations

import os
from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, hidden, missing,
    read_csv_rows, require_dir, sanitise_key, select_splits, unique_keys)
from adaptcli.data.prepare.sources.folders import VIDEO_EXTS
from adaptcli.data.prepare.sources.registry import register
from adaptcli.data.splits import TEST, TRAIN, VALIDATION, split_named_in
from adaptcli.errors import AdaptError

COLUMNS = ("youtube_id", "time_start", "time_end")  # and ``label``, except in an unlabelled test CSV
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


def annotation_csvs(folder: Path) -> dict[str, Path]:
    """The annotation CSVs of ``folder`` by the split their names name; two for one split are refused."""
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.csv")):
        split = split_named_in(path.name)
        if split is None or hidden(path.name):
            continue
        if split in found:
            raise AdaptError(f"kinetics: {found[split].name} and {path.name} in {folder} would both be the "
                             f"{split} split; move one of them away")
        found[split] = path
    return {split: found[split] for split in (TRAIN, VALIDATION, TEST) if split in found}


def find(src: Path, opts: SourceOptions) -> Found:
    root = require_dir(Path(src), "Kinetics root")
    csvs = annotation_csvs(root / "annotations") if (root / "annotations").is_dir() else {}
    csvs = csvs or annotation_csvs(root)
    if not csvs:
        raise AdaptError(f"no Kinetics annotation CSVs (train.csv, val.csv or validate.csv, test.csv; or "
                         f"kinetics_train.csv, ...) in {root} or {root / 'annotations'}")
    chosen = select_splits(list(csvs), opts.splits, "kinetics")
    rows = {split: read_csv_rows(csvs[split], "kinetics", COLUMNS, LAYOUT) for split in chosen}
    classes = sorted({row.get("label", "") for found in rows.values() for row in found} - {""})
    if len(classes) < 2:
        raise AdaptError(f"the Kinetics CSVs in {csvs[chosen[0]].parent} name {len(classes)} class(es); "
                         "pass the release's CSVs")
    index = {name: i for i, name in enumerate(classes)}
    videos = index_videos(require_dir(Path(opts.videos), "Kinetics video folder") if opts.videos else root)
    listing = Listing("kinetics", "video", classes, {s: [] for s in chosen}, settings={"classes": len(classes)},
                      origins={s: csvs[s] for s in chosen})
    for split in chosen:
        for number, row in enumerate(rows[split], 2):
            where = f"{csvs[split]}, line {number}"
            name = clip_name(row, where)
            key = sanitise_key(name)
            path = videos.get(name)
            if path is None:
                listing.skipped.append(missing(split, key, f"{name}.*", "no video file"))
                continue
            label = index[row["label"]] if row.get("label") else None
            listing.splits[split].append(Item(key=key, label=label, path=str(path),
                                              meta={"youtube_id": row["youtube_id"], "label": row.get("label", "")}))
        listing.splits[split] = unique_keys(sorted(listing.splits[split], key=lambda i: i.key))
    notes = [f"kinetics: {len(listing.skipped)} listed clips have no video file and are skipped "
             f"(first: {listing.skipped[0]['key']})"] if listing.skipped else []
    return Found([(None, listing)], notes=notes)


register(DataSource("kinetics", "Kinetics-400/600/700 as distributed (DeepMind, CVDF, mmaction2): train/val(idate)/test "
                    "CSVs and clips named {youtube_id}_{start:06d}_{end:06d} (--videos DIR)", find, order=22))
