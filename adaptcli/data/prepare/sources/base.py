"""The contract of a dataset source: what it returns (:class:`Found`, :class:`Listing`, :class:`Item`)
and how it registers (:class:`DataSource`), plus helpers shared by the readers.

Imports nothing heavy (numpy only for type checking): the CLI reads the registry for its help text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from adaptcli.data.splits import canonical_names, canonical_split, resolve_split
from adaptcli.errors import AdaptError
from adaptcli.files import NotRegularFile, read_text_bounded

if TYPE_CHECKING:
    import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]+")


@dataclass(frozen=True)
class Embedded:
    """An encoded image lying inside a larger file (a TFRecord): ``length`` bytes from byte ``offset``.
    ``scale`` multiplies its pixel values (dsprites stores 0/1 pixels, shown as 0/255)."""

    offset: int
    length: int
    scale: int = 1


@dataclass
class Item:
    """One sample to encode: a file to read (``path``; with ``embedded``, the image inside it) or an
    in-memory image (``array``).

    ``label`` is a class index, or for multi-label data the list of the sample's class indices
    (possibly empty)."""

    key: str
    label: int | list[int] | None
    path: str | None = None
    array: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    embedded: Embedded | None = None


@dataclass
class Listing:
    """A dataset as found on disk, before any decoding."""

    dataset: str
    modality: Literal["image", "video"]
    classes: list[str]
    splits: dict[str, list[Item]]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    hflip: bool = True  # False where left/right is part of the label; recorded in dataset.json
    task: Literal["single-label", "multi-label"] = "single-label"  # recorded in dataset.json
    #: Per split, the file or folder it was read from (``prepare`` prints which became which split).
    origins: dict[str, Path | str] = field(default_factory=dict)


@dataclass
class SourceOptions:
    """Dataset-specific options from the command line."""

    splits: list[str] | None = None
    labels: Path | None = None
    videos: Path | None = None
    images: Path | None = None
    split_dir: Path | None = None
    split_id: int = 1
    task: str | None = None
    fgvc_dataset: str | None = None
    allow_empty_classes: bool = False


@dataclass
class Found:
    """What a source found: one listing per output subfolder (``None``: the shard folder itself)."""

    listings: list[tuple[str | None, Listing]]
    notes: list[str] = field(default_factory=list)  # shown to the user before encoding


@dataclass(frozen=True)
class DataSource:
    """One dataset layout ``prepare`` reads: its name (the CLI argument), one line of help, its reader."""

    name: str
    help: str
    find: Callable[[Path, SourceOptions], Found]
    order: int = 100  # position in listings (``prepare --help``)


def read_source_text(path: Path, source: str) -> str:
    """A release's text file (a list, a CSV, a JSON label file): a regular file of bounded size in UTF-8
    (a byte-order mark is dropped); a one-line error naming the file and the fix otherwise."""
    try:
        return read_text_bounded(path, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdaptError(f"{source}: {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                         f"{exc.start}); save it as UTF-8 and prepare again") from None
    except NotRegularFile as exc:
        raise AdaptError(f"{source}: {exc}; pass the dataset's own file") from None


#: The longest field a CSV row may hold (csv's own limit is 128 KiB; a path or a label list is far shorter).
MAX_FIELD = 64 << 10


def read_csv_rows(path: Path, source: str, required: tuple[str, ...], layout: str) -> list[dict[str, str]]:
    """A list file's rows as ``{column: value}``: the header must name ``required``; every row has one
    field per column and no field longer than :data:`MAX_FIELD`; a one-line error naming the line
    otherwise. ``layout`` (``path,labels[,split]``) is shown in the errors."""
    import csv
    import io

    if not path.is_file():
        raise AdaptError(f"{source}: {path} is not a file; pass the CSV itself (columns {layout})")
    reader = csv.reader(io.StringIO(read_source_text(path, source), newline=""))
    try:
        header = [c.strip() for c in next(reader, [])]
        if not all(column in header for column in required):
            raise AdaptError(f"{source}: {path} needs the columns {layout}; it has: {', '.join(header)[:200] or 'none'}")
        rows = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            where = f"{source}: {path}, line {reader.line_num}"
            if len(fields) != len(header):
                raise AdaptError(f"{where} has {len(fields)} fields, the header {len(header)}; quote fields that "
                                 "hold commas")
            if max(map(len, fields)) > MAX_FIELD:
                raise AdaptError(f"{where} has a field longer than {MAX_FIELD:,} characters; check the file")
            rows.append({name: value.strip() for name, value in zip(header, fields)})
    except csv.Error as exc:
        raise AdaptError(f"{source}: {path}, line {reader.line_num}: {exc}; check the file") from None
    return rows


def csv_row_file(list_file: Path, rel: str) -> tuple[Path, str]:
    """A list row's file (relative to the list's folder unless absolute) and its sample key."""
    path = Path(rel) if Path(rel).is_absolute() else list_file.parent / rel
    return path, sanitise_key(str(Path(rel).with_suffix("")))


def sanitise_key(text: str) -> str:
    """A WebDataset-safe key: no dots, only letters, digits, ``_``, ``-`` and ``/``."""
    parts = [_UNSAFE.sub("_", part).strip("_") or "_" for part in text.replace("\\", "/").split("/") if part]
    return "/".join(parts) or "_"


def unique_keys(items: list[Item]) -> list[Item]:
    """Make keys unique (``_2``, ``_3`` suffixes) in the given, deterministic order."""
    seen: dict[str, int] = {}
    for item in items:
        base = item.key
        if base in seen:
            seen[base] += 1
            candidate = f"{base}_{seen[base]}"
            while candidate in seen:
                seen[base] += 1
                candidate = f"{base}_{seen[base]}"
            item.key = candidate
        seen.setdefault(item.key, 1)
    return items


def empty_classes_note(listing: Listing, sub: str | None = None) -> str | None:
    """One warning line naming the classes no sample of the listed splits has (a multi-label sample
    counts for each of its classes), or None when every class has one or no sample has a label (SSv2's
    test split). ``sub``: the listing's output subfolder (a VTAB task), shown after the dataset's name."""
    labelled = [item.label for items in listing.splits.values() for item in items if item.label is not None]
    used = {i for label in labelled for i in (label if isinstance(label, list) else [label])}
    empty = [name for i, name in enumerate(listing.classes) if i not in used]
    if not empty or not labelled:
        return None
    shown = ", ".join(empty[:20]) + (f" ... ({len(empty)} in all)" if len(empty) > 20 else "")
    name = f"{listing.dataset}/{sub}" if sub else listing.dataset
    return (f"warning: {name}: {len(empty)} of {len(listing.classes)} classes have no sample in "
            f"{', '.join(listing.splits) or 'any split'}: {shown}")


def missing(split: str, key: str, path: str | Path, reason: str = "file not found") -> dict[str, Any]:
    """A skipped-sample record."""
    return {"split": split, "key": key, "path": str(path), "reason": reason}


def list_item(split: str, base: Path, rel: str, label: int, listing: Listing) -> Item | None:
    """The item for a list file's ``rel`` path (tried from ``base`` and ``base/images``), or None after
    recording it as skipped when the file is missing."""
    key = sanitise_key(str(Path(rel).with_suffix("")))
    path = base / rel
    if not path.exists() and (base / "images" / rel).exists():
        path = base / "images" / rel
    if not path.is_file():
        listing.skipped.append(missing(split, key, path))
        return None
    return Item(key=key, label=label, path=str(path), meta={"file": rel})


#: Files that mark a folder as adaptcli's own output (``dataset.json``, the prepare progress file).
SHARD_MARKERS = ("dataset.json", ".prepare-state.json")


def hidden(name: str) -> bool:
    """Names starting with ``.`` (``.ipynb_checkpoints``, ``.DS_Store``) are never classes or samples."""
    return name.startswith(".")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # an unreadable folder: not ours, reported when its files are listed
        return False


def subfolders(folder: Path) -> list[Path]:
    """Visible subfolders, sorted; adaptcli shard folders (an earlier ``prepare``'s output) are not data."""
    found = []
    for path in sorted(folder.iterdir()):
        if hidden(path.name) or not path.is_dir():
            continue
        if any(_exists(path / marker) for marker in SHARD_MARKERS):
            continue
        found.append(path)
    return found


def visible_files(folder: Path, split: str, listing: "Listing") -> list[Path]:
    """Files under ``folder`` (recursively, sorted), skipping hidden names; an unreadable folder is
    recorded under ``listing.skipped`` instead of disappearing."""
    import os

    def unreadable(error: OSError) -> None:
        listing.skipped.append(missing(split, sanitise_key(str(Path(error.filename or folder).name)),
                                       error.filename or folder, f"unreadable folder: {error.strerror}"))

    found = []
    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not hidden(d))
        found += [Path(root) / f for f in files if not hidden(f)]
    return sorted(found)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise AdaptError(f"{what} not found: {path} is not a folder")
    return path


def select_splits(available: list[str], requested: list[str] | None, dataset: str) -> list[str]:
    """The requested splits, checked against the ones the dataset has."""
    if not requested:
        return available
    found = [resolve_split(s, available) for s in requested]
    if None in found:
        unknown = requested[found.index(None)]
        raise AdaptError(f"{dataset} has no split '{unknown}' (choose from "
                         f"{', '.join(canonical_split(s) for s in available) or 'none'})")
    return list(dict.fromkeys(s for s in found if s is not None))


def adopt_split_names(listing: Listing, where: str) -> None:
    """Rename ``listing``'s splits by the one split-name table (``val/`` -> ``validation``), in its skipped
    records and origins too; two names for one split are refused (:func:`adaptcli.data.splits.canonical_names`)."""
    mapping = canonical_names(listing.splits, where)
    listing.splits = {mapping[split]: items for split, items in listing.splits.items()}
    listing.origins = {mapping.get(split, split): origin for split, origin in listing.origins.items()}
    for record in listing.skipped:
        record["split"] = mapping.get(record["split"], record["split"])


def split_origins_line(listing: Listing, src: Path, samples: dict[str, int], sub: str | None = None) -> str:
    """``<dataset> splits: <file or folder> -> <split> (<samples>), ...``: which file became which split."""
    parts = []
    for split in listing.splits:
        origin = listing.origins.get(split)
        shown = _shown_origin(origin, src) if origin is not None else f"the {listing.dataset} release"
        parts.append(f"{shown} -> {split} ({samples.get(split, 0):,})")
    return f"{listing.dataset}{'/' + sub if sub else ''} splits: " + ", ".join(parts)


def _shown_origin(origin: Path | str, src: Path) -> str:
    """A split's file or folder, relative to the source folder when inside it (folders end in ``/``)."""
    if not isinstance(origin, Path):
        return origin
    base = src if src.is_dir() else src.parent
    try:
        shown = str(origin.relative_to(base)) if origin != base else "."
    except ValueError:
        shown = str(origin)
    return shown + ("/" if origin.is_dir() else "")


def parse_int_label(text: str, where: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise AdaptError(f"{where}: label {text!r} is not an integer") from None
    if value < 0:
        raise AdaptError(f"{where}: label {value} is negative")
    return value
