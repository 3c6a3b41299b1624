"""Lists of videos, in the forms users have them. SRC is one list file, or a folder of list files
whose names name a split (VideoMAE's ``train.csv``, ``val.csv``, ``test.csv``; mmaction2's
``kinetics400_train_list_videos.txt``, ``kinetics400_val_list_videos.txt``). A list is either

- a CSV with a header naming ``path`` and ``label`` (a class name), optionally ``split``; or
- lines ``<path> <label>`` without a header, separated by spaces or tabs (what mmaction2's
  ``VideoDataset`` and VideoMAE's ``train.csv`` hold, despite the suffix); a line with only a path is
  unlabelled, as is mmaction2's label ``-1``; ``#`` comments, blank lines and a first line ``path label``
  are skipped.

A list's split is its rows' ``split`` column, else the split its file name names, else ``train``.
Labels are read as written: when every label is an integer it is the class index (names from
``--labels FILE``, one per line, else the integers); otherwise labels are class names, sorted.

Paths are absolute, or relative to ``--videos DIR``, or to the list's folder, or (mmaction2's lists,
relative to ``videos_train/``, ``videos_val/``) to one of that folder's subfolders, the one whose
name names the list's split first. A missing video is skipped and listed in ``dataset.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, hidden, missing,
    read_csv_rows, read_source_text, sanitise_key, select_splits, subfolders, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.data.splits import TRAIN, split_named_in
from adaptcli.errors import AdaptError

LIST_SUFFIXES = (".csv", ".txt", ".lst")
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass
class Row:
    """One listed video: its path as written, its label as written (None: unlabelled), its split."""

    path: str
    label: str | None
    split: str
    where: str  # "<list>, line N", for messages
    split_column: bool = False  # the split came from the row's ``split`` column, not the file's name


def list_files(src: Path) -> list[Path]:
    """SRC itself, or the list files of the folder SRC whose names name a split."""
    if src.is_file():
        return [src]
    found: dict[str, Path] = {}
    for path in sorted(src.iterdir()):
        split = split_named_in(path.name)
        if not split or hidden(path.name) or path.suffix.lower() not in LIST_SUFFIXES or not path.is_file() \
                or "rawframes" in path.name:  # mmaction2's lists of extracted frames: not videos
            continue
        if split in found:
            raise AdaptError(f"videolist: {found[split].name} and {path.name} in {src} would both be the {split} "
                             "split; pass one list file, or move one away")
        found[split] = path
    if not found:
        raise AdaptError(f"videolist: {src} holds no list file named for a split (train.csv, val.csv, test.csv, "
                         "..._train_list_videos.txt, ...); pass the list file itself")
    return list(found.values())


def _has_header(text: str) -> bool:
    import csv

    first = next((line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    columns = {c.strip() for c in next(csv.reader([first]), [])}
    return {"path", "label"} <= columns


def read_rows(path: Path) -> list[Row]:
    """A list file's rows, either form (module docstring)."""
    text = read_source_text(path, "videolist")
    named = split_named_in(path.name) or TRAIN
    if _has_header(text):
        return [Row(r["path"], r["label"] or None, r.get("split") or named, f"{path}, row {n}", "split" in r)
                for n, r in enumerate(read_csv_rows(path, "videolist", ("path", "label"), "path,label[,split]"), 1)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        fields = line.split()
        if not rows and [f.lower() for f in fields] == ["path", "label"]:  # a header written with a space
            continue
        if len(fields) == 1 and "," in line:
            raise AdaptError(f"{where}: {line[:80]!r} is comma-separated without a header; add the header "
                             "'path,label' or separate path and label by a space")
        if len(fields) >= 3 and all(_INTEGER.fullmatch(f) for f in fields[-2:]):
            raise AdaptError(f"{where} has {len(fields)} fields ({line[:80]!r}); a video list holds "
                             "'<path> <label>' (a rawframes list 'path frames label' or a multi-label list is not read)")
        if len(fields) == 1:
            rows.append(Row(fields[0], None, named, where))
            continue
        rel, label = line.rsplit(None, 1)
        rows.append(Row(rel.strip(), None if label == "-1" else label, named, where))  # mmaction2: -1 unlabelled
    return rows


def class_names(rows: list[Row], labels_file: Path | None) -> tuple[list[str], dict[str, int]]:
    """(classes, label as written -> index): integer labels are indices, names are sorted."""
    written = {row.label for row in rows if row.label is not None}
    if written and all(_INTEGER.fullmatch(label) for label in written):
        values = {label: int(label) for label in written}
        bad = next((row for row in rows if row.label is not None and values[row.label] < 0), None)
        if bad is not None:
            raise AdaptError(f"{bad.where}: label {bad.label} is negative (-1 marks an unlabelled video)")
        top = max(values.values())
        names = [str(i) for i in range(top + 1)]
        if labels_file is not None:
            names = [n.strip() for n in read_source_text(labels_file, "videolist").splitlines() if n.strip()]
            if len(names) <= top:
                raise AdaptError(f"videolist: --labels {labels_file} names {len(names)} classes but a list uses "
                                 f"label {top}; pass the label map of the same lists")
        return names, values
    if labels_file is not None:
        raise AdaptError("videolist: --labels names the classes of integer labels; these lists name their "
                         "classes, so leave it out")
    names = sorted(written)
    return names, {name: i for i, name in enumerate(names)}


def search_folders(list_file: Path, split: str, videos: Path | None) -> list[Path]:
    """Where a list's relative paths are looked up, in order (module docstring)."""
    if videos is not None:
        return [videos]
    folder = list_file.parent
    return [folder, *sorted(subfolders(folder), key=lambda p: split_named_in(p.name) != split)]


def video_path(rel: str, folders: list[Path]) -> Path:
    """Where a listed video is: absolute, or in the first of ``folders`` holding it (else the first)."""
    if Path(rel).is_absolute():
        return Path(rel)
    return next((folder / rel for folder in folders if (folder / rel).is_file()), folders[0] / rel)


def find(src: Path, opts: SourceOptions) -> Found:
    files = list_files(src)
    per_file = {path: read_rows(path) for path in files}
    rows = [row for found in per_file.values() for row in found]
    if not rows:
        raise AdaptError(f"videolist: {', '.join(map(str, files))[:200]} list no videos")
    for split in dict.fromkeys(row.split for row in rows):
        labelled = [row.label is not None for row in rows if row.split == split]
        if any(labelled) and not all(labelled):
            first = next(row for row in rows if row.split == split and row.label is None)
            raise AdaptError(f"{first.where} has no label but other {split} videos have one; every video of a "
                             "split needs its class (or none has one: an unlabelled split)")
    classes, index = class_names(rows, opts.labels)
    available = list(dict.fromkeys(row.split for row in rows))
    chosen = select_splits(available, opts.splits, f"videolist {src.name}")
    listing = Listing("videolist", "video", classes, {s: [] for s in chosen}, settings={"list": src.name})
    for path, found in per_file.items():
        folders: dict[str, list[Path]] = {}
        for row in found:
            if row.split not in listing.splits:
                continue
            listing.origins.setdefault(row.split, f"rows of {path.name} with split {row.split}" if row.split_column
                                       else path)
            if row.split not in folders:
                folders[row.split] = search_folders(path, split_named_in(row.split) or row.split, opts.videos)
            file = video_path(row.path, folders[row.split])
            key = sanitise_key(str(Path(row.path).with_suffix("")))
            if not file.is_file():
                listing.skipped.append(missing(row.split, key, file))
                continue
            label = index.get(row.label) if row.label is not None else None
            listing.splits[row.split].append(Item(key=key, label=label, path=str(file),
                                                  meta={"file": row.path, "class": row.label}))
    for split, items in listing.splits.items():
        listing.splits[split] = unique_keys(sorted(items, key=lambda i: i.key))
    notes = [f"videolist: {len(listing.skipped)} listed videos are missing and are skipped "
             f"(first: {listing.skipped[0]['path']})"] if listing.skipped else []
    return Found([(None, listing)], notes=notes)


register(DataSource("videolist", "a list of videos: a CSV of path,label[,split] rows, or 'PATH LABEL' lines "
                    "(mmaction2, VideoMAE); a file, or a folder of train/val/test lists", find, order=101))
