"""Which folders and files adaptcli wrote: the one rule for what it writes over or deletes.

**Folders** (a run, a suite, a shard folder, an export folder) say two things: their *marker*, the file
whose presence says adaptcli wrote the folder, and their *entries*, the names adaptcli writes in it (an
exact name matches a file or a folder, a ``*`` pattern files only; the ``.tmp-`` leftovers
:func:`adaptcli.io.atomic_path` leaves of an entry count as the entry). :func:`claim_folder` refuses a
path that is a file, and a folder that holds anything but no marker (never suggesting ``--overwrite``:
it would not help); :meth:`FolderClaim.clear` deletes the entries and nothing else.

**Single files** (``report --out/--plot``, ``eval --scores``, ``predict --out``) are written only at a
new path, or over a file adaptcli wrote there itself and nobody has changed since. What it wrote is
listed, with each file's SHA-256, in a ledger next to it (``.adaptcli-outputs.json``); a file that is
not in the ledger, or whose content changed, is someone else's (a user's file, a run's ``summary.json``
or weights, a suite's ``results.json``, a dataset's ``dataset.json``: none of those is ever in the
ledger) and :func:`claim_file` refuses it in one line; :func:`record_file` adds a file just written.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from collections.abc import Collection
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from adaptcli.errors import AdaptError
from adaptcli.files import file_sha256

LEDGER = ".adaptcli-outputs.json"
#: A ledger larger than this is not one adaptcli wrote: it is read as empty (nothing is ours).
MAX_LEDGER_BYTES = 4 << 20
#: ``atomic_path``'s staging name of an entry: ``.tmp-<pid>-<name>`` (``.tmp-<name>`` for checkpoints).
_LEFTOVER = re.compile(r"\.tmp-(?:\d+-)?(?P<name>.+)")


# ---------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class Marker:
    """The file that marks a folder as adaptcli's; ``key``: for a JSON file other tools write too (timm's
    ``config.json``), the top-level key only adaptcli puts in it."""

    name: str
    key: str | None = None

    def found_in(self, folder: Path) -> bool:
        path = folder / self.name
        if not path.is_file():
            return False
        if self.key is None:
            return True
        from adaptcli.files import read_json

        try:
            data = read_json(path)
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and self.key in data

    def __str__(self) -> str:
        return self.name if self.key is None else f"{self.name} with an '{self.key}' section"


Markers = str | Marker | Collection[str | Marker]


def _markers(marker: Markers) -> tuple[Marker, ...]:
    found = (marker,) if isinstance(marker, (str, Marker)) else tuple(marker)
    if not found:
        raise ValueError("a folder kind needs a marker")
    return tuple(m if isinstance(m, Marker) else Marker(m) for m in found)


def is_entry(entry: Path, entries: Collection[str]) -> bool:
    """Whether ``entry`` is one of ``entries`` (or an ``atomic_path`` leftover of one)."""
    folder = entry.is_dir() and not entry.is_symlink()
    leftover = _LEFTOVER.fullmatch(entry.name)
    names = (entry.name,) if leftover is None else (entry.name, leftover["name"])
    return any(name == pattern or (not folder and "*" in pattern and fnmatchcase(name, pattern))
               for name in names for pattern in entries)


def _shown(names: list[str], most: int) -> str:
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


@dataclass(frozen=True)
class FolderClaim:
    """A folder :func:`claim_folder` accepted; ``found``: it holds the marker (adaptcli wrote it)."""

    path: Path
    entries: Collection[str]
    ignore: Collection[str]
    found: bool

    def listing(self) -> list[Path]:
        """What the folder holds now, without the ignored names (a lock another process may hold)."""
        if not self.path.is_dir():
            return []
        return [p for p in self.path.iterdir() if p.name not in self.ignore]

    def foreign(self) -> list[str]:
        """Names in the folder that adaptcli does not write there (a user's files), sorted."""
        return sorted(p.name for p in self.listing() if not is_entry(p, self.entries))

    def clear(self) -> list[str]:
        """Delete what adaptcli writes here (its entries and their leftovers); returns the names left."""
        for entry in self.listing():
            if not is_entry(entry, self.entries):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return self.foreign()


def claim_folder(path: Path, marker: Markers, entries: Collection[str], overwrite: bool | None, *, what: str,
                 option: str = "--out", ignore: Collection[str] = (), whole: bool = False,
                 resume: str | None = None) -> FolderClaim:
    """Refuse ``path`` unless it is new, empty, or a folder of this kind (one line, exit 2).

    ``marker``: the file (or files, any of them) that marks the folder as adaptcli's; ``entries``: what
    adaptcli writes in it; ``what``: the kind in words ("an adaptcli run"). ``overwrite``: True, the
    caller replaces it (:meth:`FolderClaim.clear`, or a rename over it); False, a folder of this kind is
    refused (``resume``: the option that continues it instead); None, the caller continues it.
    ``whole``: the folder is replaced as a whole, so one holding anything else is refused even then.
    ``option``: how the user named the path ("" for a folder adaptcli chose).
    """
    path = Path(path)
    label = f"{option} {path}" if option else str(path)
    markers = _markers(marker)
    if whole and path.is_symlink():
        raise AdaptError(f"{label} is a symbolic link; adaptcli replaces only a folder it wrote: choose a new "
                         "folder name")
    if path.exists() and not path.is_dir():
        raise AdaptError(f"{label} is a file, not a folder; choose a folder path for {what}")
    found = path.is_dir() and any(m.found_in(path) for m in markers)
    claim = FolderClaim(path, frozenset(entries), frozenset(ignore), found)
    held = sorted(p.name for p in claim.listing())
    if held and not found:
        raise AdaptError(f"{label} holds files that are not {what} (found: {_shown(held, 3)}; no {markers[0]}); "
                         "choose a new or empty folder")
    foreign = claim.foreign() if found and whole else []
    if foreign:
        raise AdaptError(f"{label} holds entries adaptcli did not write ({_shown(foreign, 5)}); move them out of "
                         "it, or choose a new or empty folder")
    if found and overwrite is False:
        fix = f"pass {resume} to continue it or --overwrite to replace it" if resume else \
            "pass --overwrite to replace it, or choose another name"
        raise AdaptError(f"{label} already holds {what}; {fix}")
    return claim


def uncreated_top(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet, so what creating ``path`` would
    create (None when ``path`` exists): a command refused after creating it removes what it created."""
    path = Path(path).absolute()
    if path.exists() or path.is_symlink():
        return None
    top = path
    for parent in path.parents:
        if parent.exists():
            break
        top = parent
    return top


def remove_created(path: Path, top: Path) -> None:
    """Undo the creation of ``path`` by a command refused before it wrote anything that counts: ``path``
    (which did not exist, so all it holds is the command's) and then each parent up to ``top`` that is
    still empty (another command may have written beside it since)."""
    path = Path(path).absolute()
    shutil.rmtree(path, ignore_errors=True)
    for parent in path.parents:
        if not parent.is_relative_to(top):
            break
        try:
            parent.rmdir()
        except OSError:
            break


def wrote_folder(path: Path, marker: Markers, entries: Collection[str]) -> bool:
    """Whether ``path`` is a real folder holding the marker and nothing but ``entries``."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink() or not any(m.found_in(path) for m in _markers(marker)):
        return False
    return not FolderClaim(path, frozenset(entries), frozenset(), True).foreign()


# ---------------------------------------------------------------------------- single files


def _ledger(folder: Path) -> dict[str, str]:
    path = folder / LEDGER
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LEDGER_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def wrote_file(path: Path) -> bool:
    """Whether ``path`` is a regular file adaptcli wrote and nobody has changed since."""
    path = Path(path)
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
    except OSError:
        return False
    recorded = _ledger(path.parent).get(path.name)
    return recorded is not None and recorded == file_sha256(path)


def claim_file(path: Path, option: str) -> None:
    """Refuse ``path`` unless it is new or a file adaptcli wrote there (one line, exit 2)."""
    path = Path(path)
    if path.name == LEDGER:
        raise AdaptError(f"{option} {path} is adaptcli's own list of the files it wrote; choose another name")
    if path.is_dir():
        raise AdaptError(f"{option} {path} is a folder; name the file to write inside it")
    if (path.exists() or path.is_symlink()) and not wrote_file(path):
        raise AdaptError(f"{option} {path} already exists and adaptcli did not write it (or it changed since); "
                         "adaptcli never replaces such a file: choose a new name or move it away yourself")
    if not path.parent.is_dir():
        raise AdaptError(f"{option} {path}: the folder {path.parent} does not exist; create it first")


def record_file(path: Path) -> None:
    """Add ``path`` (just written by adaptcli) to its folder's ledger."""
    from adaptcli.io import write_json

    path = Path(path)
    ledger = _ledger(path.parent)
    ledger[path.name] = file_sha256(path)
    write_json(path.parent / LEDGER, ledger)


__all__ = ["LEDGER", "FolderClaim", "Marker", "claim_file", "claim_folder", "is_entry", "record_file",
           "wrote_file", "wrote_folder"]
