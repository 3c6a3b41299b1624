"""Whether a split has labels, known before any scoring (SSv2's test split lists ids only).

``dataset.json`` records it per split (``labelled``) since ``prepare`` writes it; for a manifest written
before, the first sample of the split's first shard says: unlabelled splits are written whole without a
class member (``cls`` or ``labels``), so one sample stands for the split.
"""

from __future__ import annotations

from adaptcli.data.stream.shards import ShardFolder
from adaptcli.errors import AdaptError

#: The tar members that carry a sample's class (single-label ``cls``, multi-label ``labels``).
LABEL_MEMBERS = ("cls", "labels")


def split_labelled(shards: ShardFolder, split: str) -> bool | None:
    """True or False for ``split`` as recorded, else by its first sample; None when that cannot be read
    here (no shard, or a damaged one: the loaders report it)."""
    from adaptcli.data.stream.tar_reader import SHARD_ERRORS, iter_members, split_name

    info = shards.split(split)
    if info.labelled is not None:
        return info.labelled
    if not info.shards:
        return None
    first: str | None = None
    try:
        for name, data in iter_members(shards.path / info.shards[0]):
            key, field = split_name(name)
            if first is not None and key != first:
                return False
            first = key
            if field in LABEL_MEMBERS:
                return not (field == "cls" and data.strip() == b"-1")
    except SHARD_ERRORS:
        return None
    return False if first is not None else None


def check_split_labelled(shards: ShardFolder, split: str) -> None:
    """A one-line :class:`AdaptError` when ``split`` has no labels to score against, naming a split that has."""
    if split_labelled(shards, split) is not False:
        return
    others = [name for name in shards.manifest.splits if name != split and split_labelled(shards, name)]
    preferred = [name for name in others if name in ("validation", "val")] or others
    scored = f"pass --split {preferred[0]} to score a labelled split, or " if preferred else ""
    raise AdaptError(f"split '{split}' of {shards.path} has no labels (SSv2's test split is unlabelled), so there "
                     f"is nothing to score: {scored}run adaptcli predict on its raw files for predictions")


__all__ = ["LABEL_MEMBERS", "check_split_labelled", "split_labelled"]
