"""A CSV list of images: columns ``path``, ``labels`` (class names separated by ``;``), optional ``split``.

Paths are relative to the CSV's folder (or absolute). Rows without a ``split`` go to ``train``.
The list is single-label when every row names exactly one class, multi-label otherwise (a row may
then name none). Classes are the names in sorted order; a missing image is skipped and listed.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, csv_row_file, missing,
    read_csv_rows, select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

SEPARATOR = ";"


def read_rows(path: Path) -> list[dict[str, str]]:
    """The CSV's rows, checked for the ``path`` and ``labels`` columns (:func:`read_csv_rows`)."""
    return read_csv_rows(path, "imagelist", ("path", "labels"), "path,labels[,split]")


def find(src: Path, opts: SourceOptions) -> Found:
    rows = read_rows(src)
    if not rows:
        raise AdaptError(f"imagelist: {src} has no rows")
    names = [[n.strip() for n in row["labels"].split(SEPARATOR) if n.strip()] for row in rows]
    multi = any(len(n) != 1 for n in names)
    classes = sorted({n for row_names in names for n in row_names})
    index = {name: i for i, name in enumerate(classes)}
    splits = [row.get("split") or "train" for row in rows]
    chosen = select_splits(sorted(set(splits)), opts.splits, f"imagelist {src.name}")
    listing = Listing("imagelist", "image", classes, {s: [] for s in chosen},
                      task="multi-label" if multi else "single-label", settings={"list": src.name})
    listing.origins = {s: f"rows of {src.name} with split {s}" for s in chosen}
    for row, row_names, split in zip(rows, names, splits):
        if split not in listing.splits:
            continue
        path, key = csv_row_file(src, row["path"])
        if not path.is_file():
            listing.skipped.append(missing(split, key, path))
            continue
        labels = sorted(index[n] for n in row_names)
        listing.splits[split].append(Item(key=key, label=labels if multi else labels[0], path=str(path),
                                          meta={"file": row["path"], "labels": row_names}))
    for split, items in listing.splits.items():
        listing.splits[split] = unique_keys(sorted(items, key=lambda i: i.key))
    notes = [f"imagelist: {len(listing.skipped)} listed images are missing and are skipped"] if listing.skipped else []
    return Found([(None, listing)], notes=notes)


register(DataSource("imagelist", "a CSV of path,labels[,split] rows; labels separated by ';' "
                    "(multi-label unless every row has exactly one)", find, order=100))
