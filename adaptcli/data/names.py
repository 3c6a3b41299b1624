"""Names that come from data (split names, shard file names) checked before they become part of a path.

A split name from a CSV column or a label file, or a shard name read from ``dataset.json``, must be one
plain file-name component: no separator, not ``.`` or ``..``, not absolute, no control character, at
most 100 characters. Anything else is refused in one line: it would write or read outside its folder.
"""

from __future__ import annotations

import re

from adaptcli.errors import AdaptError

MAX_NAME = 100
_SPLIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def split_problem(name: object) -> str | None:
    """Why ``name`` cannot be a split name (None when it can): letters, digits, ``_ . + -``."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it is longer than {MAX_NAME} characters"
    if not _SPLIT.fullmatch(name) or ".." in name:
        return "a split name may hold only letters, digits and _ . + - (starting with a letter or digit)"
    return None


def check_split_name(name: object, where: str) -> str:
    """``name`` when it is a valid split name; a one-line :class:`AdaptError` naming ``where`` otherwise."""
    problem = split_problem(name)
    if problem:
        raise AdaptError(f"{where}: the split name {str(name)[:60]!r} cannot be used ({problem}); "
                         "rename that split in the data")
    return str(name)


def file_name_problem(name: object) -> str | None:
    """Why ``name`` is not one plain file name inside its folder (None when it is)."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        return "not a file name"
    if "/" in name or "\\" in name or "\x00" in name or any(ord(c) < 32 for c in name):
        return "a path, not a file name in the folder"
    if len(name) > 255:
        return "longer than 255 characters"
    return None


__all__ = ["check_split_name", "file_name_problem", "split_problem"]
