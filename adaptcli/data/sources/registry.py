"""The dataset sources ``prepare`` knows: each module in :data:`MODULES` declares ``SOURCES``.

Adding a dataset: write ``sources/<name>.py`` with a reader and
``SOURCES = (DataSource("<name>", "<one line of help>", find),)``, then add the module to
:data:`MODULES`. Source modules import nothing heavy at module level, so ``adaptcli prepare --help``
(which lists the names) stays instant.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from adaptcli.data.sources.base import DataSource, Found, SourceOptions
from adaptcli.errors import AdaptError

MODULES = ("ssv2", "hmdb51", "vtab", "cifar100", "svhn", "food101", "fgvc", "folders", "nuswide", "imagelist")


@cache
def sources() -> dict[str, DataSource]:
    """Name -> source, in the order of :data:`MODULES`."""
    found: dict[str, DataSource] = {}
    for module in MODULES:
        for source in importlib.import_module(f"adaptcli.data.sources.{module}").SOURCES:
            if source.name in found:
                raise RuntimeError(f"dataset source '{source.name}' is registered twice")
            found[source.name] = source
    return found


def dataset_names() -> list[str]:
    """The names ``adaptcli prepare`` accepts."""
    return list(sources())


def dataset_help() -> str:
    """Help text of the CLI's DATASET argument: every name with its one line."""
    return "; ".join(f"{s.name}: {s.help}" for s in sources().values()) + "."


def get_source(name: str) -> DataSource:
    """The source called ``name``, or a one-line error listing the names there are."""
    if name not in sources():
        raise AdaptError(f"unknown dataset '{name}': choose one of {', '.join(dataset_names())}")
    return sources()[name]


def list_dataset(name: str, src: Path, opts: SourceOptions) -> Found:
    """Read ``src`` as dataset ``name`` (VTAB gives one listing per task, in its subfolder)."""
    if not src.exists():
        raise AdaptError(f"dataset folder {src} does not exist")
    return get_source(name).find(src, opts)


__all__ = ["MODULES", "sources", "dataset_names", "dataset_help", "get_source", "list_dataset",
           "DataSource", "Found", "SourceOptions"]
