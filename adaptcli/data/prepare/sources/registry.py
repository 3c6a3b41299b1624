"""The dataset sources ``prepare`` knows: every module of this folder registers its own.

Adding a dataset: write ``sources/<name>.py`` with a reader and
``register(DataSource("<name>", "<one line of help>", find))``; the folder is scanned. Source modules
import nothing heavy at module level, so ``adaptcli prepare --help`` (which lists the names) stays
instant.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import DataSource, Found, Listing, SourceOptions
from adaptcli.data.splits import canonical_names
from adaptcli.errors import AdaptError
from adaptcli.registry import Registry

#: Every source module registers its layouts here (the folder is imported on first read).
SOURCES: Registry[DataSource] = Registry("dataset", lambda source: source.help, package="adaptcli.data.prepare.sources",
                                         order=lambda source: source.order)


def register(source: DataSource) -> DataSource:
    """Called by each source module at import time."""
    return SOURCES.register(source)


def dataset_help() -> str:
    """Help text of the CLI's DATASET argument: every name with its one line."""
    return SOURCES.help() + "."


def list_dataset(name: str, src: Path, opts: SourceOptions) -> Found:
    """Read ``src`` as dataset ``name`` (VTAB gives one listing per task, in its subfolder)."""
    if not src.exists():
        raise AdaptError(f"dataset folder {src} does not exist")
    found = SOURCES.get(name).find(src, opts)
    lines = [adaptcli_split_names(listing, src, sub) for sub, listing in found.listings]
    return Found(found.listings, notes=[line for line in lines if line] + found.notes)


def adaptcli_split_names(listing: Listing, src: Path, sub: str | None) -> str | None:
    """Rename ``listing``'s splits by the one split-name table (``val`` -> ``validation``) and return the
    line saying which file or folder became which split (None for a listing without splits)."""
    where = f"{listing.dataset}{'/' + sub if sub else ''}"
    mapping = canonical_names(listing.splits, f"{where} data in {src}")
    listing.splits = {mapping[split]: items for split, items in listing.splits.items()}
    listing.origins = {mapping.get(split, split): origin for split, origin in listing.origins.items()}
    for record in listing.skipped:
        record["split"] = mapping.get(record["split"], record["split"])
    if not listing.splits:
        return None
    parts = []
    for split, items in listing.splits.items():
        origin = listing.origins.get(split)
        shown = _shown_path(origin, src) if origin is not None else f"the {listing.dataset} release"
        parts.append(f"{shown} -> {split} ({len(items):,})")
    return f"{where} splits: " + ", ".join(parts)


def _shown_path(origin: Path | str, src: Path) -> str:
    """A split's origin relative to the source folder where it lies inside it (folders end in ``/``)."""
    if not isinstance(origin, Path):
        return origin
    base = src if src.is_dir() else src.parent
    try:
        shown = str(origin.relative_to(base)) if origin != base else "."
    except ValueError:
        shown = str(origin)
    return shown + ("/" if origin.is_dir() else "")


__all__ = ["SOURCES", "register", "dataset_help", "list_dataset",
           "DataSource", "Found", "SourceOptions"]
