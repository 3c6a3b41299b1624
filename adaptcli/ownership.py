"""The ownership rule for single-file outputs (``report --out/--plot``, ``eval --scores``).

adaptcli writes such a file only at a new path, or over a file it wrote there itself and nobody has
changed since. What it wrote is listed, with each file's SHA-256, in a ledger next to it
(``.adaptcli-outputs.json``); a file that is not in the ledger, or whose content changed, is someone
else's (a user's file, a run's ``summary.json`` or weights, a suite's ``results.json``, a dataset's
``dataset.json``: none of those is ever in the ledger) and is refused in one line.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

from adaptcli.errors import AdaptError

LEDGER = ".adaptcli-outputs.json"
#: A ledger larger than this is not one adaptcli wrote: it is read as empty (nothing is ours).
MAX_LEDGER_BYTES = 4 << 20


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _ledger(folder: Path) -> dict[str, str]:
    path = folder / LEDGER
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LEDGER_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def wrote_it(path: Path) -> bool:
    """Whether ``path`` is a regular file adaptcli wrote and nobody has changed since."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
    except OSError:
        return False
    recorded = _ledger(path.parent).get(path.name)
    return recorded is not None and recorded == _digest(path)


def check_output_file(path: Path, option: str) -> None:
    """Refuse ``path`` unless it is new or a file adaptcli wrote there (one line, exit 2)."""
    path = Path(path)
    if path.name == LEDGER:
        raise AdaptError(f"{option} {path} is adaptcli's own list of the files it wrote; choose another name")
    if path.is_dir():
        raise AdaptError(f"{option} {path} is a folder; name the file to write inside it")
    if (path.exists() or path.is_symlink()) and not wrote_it(path):
        raise AdaptError(f"{option} {path} already exists and adaptcli did not write it (or it changed since); "
                         "adaptcli never replaces such a file: choose a new name or move it away yourself")
    if not path.parent.is_dir():
        raise AdaptError(f"{option} {path}: the folder {path.parent} does not exist; create it first")


def record_output(path: Path) -> None:
    """Add ``path`` (just written by adaptcli) to its folder's ledger."""
    from adaptcli.io import write_json

    path = Path(path)
    ledger = _ledger(path.parent)
    ledger[path.name] = _digest(path)
    write_json(path.parent / LEDGER, ledger)


__all__ = ["LEDGER", "check_output_file", "record_output", "wrote_it"]
