"""One rule for split names: the names datasets give their splits, mapped to adaptcli's own.

``prepare`` stores every split under its adaptcli name (a ``val/`` folder, ``val.csv`` or
``kinetics_val.csv`` becomes ``validation``); names outside the table (VTAB's ``train800``, a user's
``holdout``) are kept as they are. Shards written before this rule may still carry ``val``: a run's
``data.*_split`` and ``eval --split`` find a split by its adaptcli name too (:func:`resolve_split`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from adaptcli.errors import AdaptError

TRAIN, VALIDATION, TEST = "train", "validation", "test"

#: The split names datasets use (compared in lower case) -> adaptcli's name. docs/data.md shows this table.
SPLIT_NAMES: dict[str, str] = {
    "train": TRAIN, "training": TRAIN,
    "val": VALIDATION, "valid": VALIDATION, "validate": VALIDATION, "validation": VALIDATION, "dev": VALIDATION,
    "test": TEST, "testing": TEST,
}

_TOKENS = re.compile(r"[^A-Za-z0-9]+")


def canonical_split(name: str) -> str:
    """adaptcli's name for a dataset's split name (``val`` -> ``validation``); other names unchanged."""
    return SPLIT_NAMES.get(name.lower(), name)


def split_named_in(file_name: str) -> str | None:
    """The adaptcli split a list file's name names (``val.csv``, ``kinetics_val.csv``,
    ``kinetics400_train_list_videos.txt``), or None when it names none or more than one."""
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    found = {SPLIT_NAMES[t.lower()] for t in _TOKENS.split(stem) if t and t.lower() in SPLIT_NAMES}
    return found.pop() if len(found) == 1 else None


def canonical_names(names: Iterable[str], where: str) -> dict[str, str]:
    """``{dataset's name: adaptcli's name}`` for the splits of one dataset; two names that would become
    one split (``val/`` and ``validation/``) are refused in one line."""
    mapping: dict[str, str] = {}
    for name in names:
        target = canonical_split(name)
        clash = next((other for other, t in mapping.items() if t == target), None)
        if clash is not None:
            raise AdaptError(f"{where}: '{clash}' and '{name}' would both be the split '{target}'; "
                             "remove or rename one of them")
        mapping[name] = target
    return mapping


def resolve_split(name: str, available: Iterable[str]) -> str | None:
    """The split of ``available`` that ``name`` means: itself, else the one with the same adaptcli name
    (``validation`` finds ``val`` in shards written before the rule, ``val`` finds ``validation``)."""
    available = list(available)
    if name in available:
        return name
    same = [split for split in available if canonical_split(split) == canonical_split(name)]
    return same[0] if len(same) == 1 else None


def configured_split(key: str, requested: str, available: Iterable[str], where: str, *, default: str | None = None,
                     fix: str = "") -> str | None:
    """The split of ``available`` that ``data.<key>`` names: itself, else the one with the same adaptcli name
    (:func:`resolve_split`: ``training`` finds ``train``). A name the data lacks is a one-line error listing
    the data's splits (``fix``: another way out, appended), except ``default`` (the value left unset), which
    the data may lack: None then."""
    available = list(available)
    found = resolve_split(requested, available)
    if found is None and requested != default:
        raise AdaptError(f"data.{key}={requested}: {where} has no split '{requested}' (it has: "
                         f"{', '.join(available) or 'none'}); set --set data.{key} to one of them{fix}")
    return found


def validation_split(requested: str | None, available: Iterable[str], where: str) -> str | None:
    """The split that ``data.val_split`` validates on, or None for no validation.

    ``null`` is no validation; ``validation`` (the default) is the data's validation split when it
    has one (``val``, ``valid``, ... count) and no validation when it has none; any other name must be
    a split the data has: a one-line error otherwise.
    """
    if requested is None:
        return None
    return configured_split("val_split", requested, available, where, default=VALIDATION,
                            fix=", or null to train without validation")


def eval_split_option(test_split: str, val_split: str | None, available: Iterable[str]) -> str:
    """What a printed ``adaptcli eval`` command adds so that it evaluates a run where the run tests: its
    ``data.test_split`` (the ssv2 recipe's is ``validation``: SSv2's test split is unlabelled), else, where the
    data lacks that, its validation split; ``" --split NAME"``, or ``""`` where eval's default ``test`` is it."""
    available = list(available)
    split = resolve_split(test_split, available)
    if split is None and val_split is not None:
        split = resolve_split(val_split, available)
    return f" --split {shlex.quote(split)}" if split is not None and split != TEST else ""


__all__ = ["SPLIT_NAMES", "TRAIN", "VALIDATION", "TEST", "canonical_split", "canonical_names", "configured_split",
           "eval_split_option",
           "resolve_split", "split_named_in", "validation_split"]
