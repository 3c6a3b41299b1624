"""The export-format registry: how an export is laid out on disk. Torch-free.

A format is one module in this folder that calls :func:`register` at import time and keeps its
heavy imports inside its functions (``adaptcli export --help`` lists the formats without torch).
Its ``write(export, out)`` receives an :class:`~adaptcli.deploy.export.Export` and returns what it
wrote and how it checked.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from adaptcli.errors import AdaptError


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str  # one line for --help
    modes: tuple[str, ...]  # which of merge / full / adapter-only it can hold
    write: Callable[..., dict[str, Any]]
    suffix: str | None = None  # required file suffix; None: the output is a folder
    #: folder formats: whether an existing folder is one this format wrote (--overwrite replaces only that)
    wrote: Callable[[Path], bool] | None = None


_REGISTRY: dict[str, ExportFormat] = {}
_DISCOVERED = False


def register(fmt: ExportFormat) -> ExportFormat:
    _REGISTRY[fmt.name] = fmt
    return fmt


def _discover() -> None:
    global _DISCOVERED
    if not _DISCOVERED:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _DISCOVERED = True


def format_names() -> tuple[str, ...]:
    _discover()
    return tuple(_REGISTRY)


def format_help() -> str:
    _discover()
    return "; ".join(f"{fmt.name}: {fmt.summary}" for fmt in _REGISTRY.values())


def export_format(name: str) -> ExportFormat:
    _discover()
    if name not in _REGISTRY:
        raise AdaptError(f"unknown export format '{name}': choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
