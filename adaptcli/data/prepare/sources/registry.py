"""The dataset sources ``prepare`` knows: every module of this folder registers its own.

Adding a dataset: write ``sources/<name>.py`` with a reader and
``register(DataSource("<name>", "<one line of help>", find))``; the folder is scanned. Source modules
import nothing heavy at module level, so ``adaptcli prepare --help`` (which lists the names) stays
instant.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import DataSource, Found, SourceOptions, adopt_split_names
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
    for sub, listing in found.listings:
        adopt_split_names(listing, f"{listing.dataset}{'/' + sub if sub else ''} data in {src}")
    return found


__all__ = ["SOURCES", "register", "dataset_help", "list_dataset",
           "DataSource", "Found", "SourceOptions"]
