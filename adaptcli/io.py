"""Crash-safe file writing: write to a temporary name beside the target, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; it replaces ``target`` only if the block succeeds.

    Works for files and folders. A crash leaves at most a ``.tmp-`` entry, never a half-written
    target that looks complete.
    """
    target = Path(target)
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    _remove(tmp)
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            _remove(target)
        os.replace(tmp, target)
    finally:
        _remove(tmp)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
