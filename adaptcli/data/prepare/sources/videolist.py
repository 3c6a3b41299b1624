"""A CSV list of videos: columns ``path``, ``label`` (a class name), optional ``split`` (the video twin of
``imagelist``, and the ``path label`` lists other video toolkits read).

Paths are relative to the CSV's folder (or absolute). Rows without a ``split`` go to ``train``. Classes
are the names in sorted order; a missing video is skipped and listed in ``dataset.json``.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, csv_row_file, missing,
    read_csv_rows, select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError


def find(src: Path, opts: SourceOptions) -> Found:
    rows = read_csv_rows(src, "videolist", ("path", "label"), "path,label[,split]")
    if not rows:
        raise AdaptError(f"videolist: {src} has no rows")
    empty = next((i for i, row in enumerate(rows, 2) if not row["label"]), None)
    if empty is not None:
        raise AdaptError(f"videolist: {src}, line {empty} has no label; every video needs its class name")
    classes = sorted({row["label"] for row in rows})
    index = {name: i for i, name in enumerate(classes)}
    splits = [row.get("split") or "train" for row in rows]
    chosen = select_splits(sorted(set(splits)), opts.splits, f"videolist {src.name}")
    listing = Listing("videolist", "video", classes, {s: [] for s in chosen}, settings={"list": src.name})
    for row, split in zip(rows, splits):
        if split not in listing.splits:
            continue
        path, key = csv_row_file(src, row["path"])
        if not path.is_file():
            listing.skipped.append(missing(split, key, path))
            continue
        listing.splits[split].append(Item(key=key, label=index[row["label"]], path=str(path),
                                          meta={"file": row["path"], "class": row["label"]}))
    for split, items in listing.splits.items():
        listing.splits[split] = unique_keys(sorted(items, key=lambda i: i.key))
    notes = [f"videolist: {len(listing.skipped)} listed videos are missing and are skipped"] if listing.skipped else []
    return Found([(None, listing)], notes=notes)


register(DataSource("videolist", "a CSV of path,label[,split] rows (one class name per video)", find, order=101))
