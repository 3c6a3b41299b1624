"""What every dataset reader returns: the classes and, per split, the items to encode."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adaptcli.errors import AdaptError

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]+")


@dataclass
class Item:
    """One sample to encode: a file to read (``path``) or an in-memory image (``array``)."""

    key: str
    label: int | None
    path: str | None = None
    array: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Listing:
    """A dataset as found on disk, before any decoding."""

    dataset: str
    modality: Literal["image", "video"]
    classes: list[str]
    splits: dict[str, list[Item]]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


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


def missing(split: str, key: str, path: str | Path, reason: str = "file not found") -> dict[str, Any]:
    """A skipped-sample record."""
    return {"split": split, "key": key, "path": str(path), "reason": reason}


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise AdaptError(f"{what} not found: {path} is not a folder")
    return path


def select_splits(available: list[str], requested: list[str] | None, dataset: str) -> list[str]:
    """The requested splits, checked against the ones the dataset has."""
    if not requested:
        return available
    unknown = [s for s in requested if s not in available]
    if unknown:
        raise AdaptError(f"{dataset} has no split '{unknown[0]}' (choose from {', '.join(available)})")
    return requested


def parse_int_label(text: str, where: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise AdaptError(f"{where}: label {text!r} is not an integer") from None
    if value < 0:
        raise AdaptError(f"{where}: label {value} is negative")
    return value
