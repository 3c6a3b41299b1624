"""A split's sample count checked against its shards before a loader trusts it.

Steps per epoch come from the manifest's count, so a wrong count is not harmless: ``samples: 10**15``
makes an epoch that never ends, ``samples: 1000`` over 48 real samples trains on repeats, and eval
would report on fewer samples than it claims. The check costs a ``stat`` per shard when the manifest
records each shard's count (every ``prepare`` since ``shard_samples`` exists); older manifests are
counted by reading the shards' tar headers (data blocks are skipped).
"""

from __future__ import annotations

from adaptcli.data.manifest import MANIFEST_NAME
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.errors import AdaptError

#: A sample is at least one tar member, so at least one 512-byte header.
MIN_SAMPLE_BYTES = 512


def counted_samples(shards: ShardFolder, split: str) -> int | None:
    """The samples the shards of ``split`` hold, by the manifest's per-shard record or by reading
    headers; None when that cannot be known here (a shard missing or damaged: the loaders report it)."""
    from adaptcli.data.stream.tar_reader import SHARD_ERRORS, count_samples

    info = shards.split(split)
    paths = [shards.path / name for name in info.shards]
    if not all(path.is_file() for path in paths):
        return None
    capacity = sum(path.stat().st_size for path in paths) // MIN_SAMPLE_BYTES
    if info.shard_samples is not None and sum(info.shard_samples) <= capacity:
        return sum(info.shard_samples)
    try:  # no record, or one the files cannot hold: count the headers
        return sum(count_samples(path) for path in paths)
    except SHARD_ERRORS:
        return None


def count_problem(shards: ShardFolder, split: str) -> str | None:
    """What is wrong with the sample count of ``split`` (None when it agrees with the shards)."""
    claimed = shards.split(split).samples
    held = counted_samples(shards, split)
    if held is None or held == claimed:
        return None
    return (f"{shards.path / MANIFEST_NAME} says split '{split}' has {claimed:,} samples but its shards "
            f"hold {held:,}")


def check_split_count(shards: ShardFolder, split: str) -> None:
    """A one-line :class:`AdaptError` when the manifest's count of ``split`` disagrees with its shards."""
    problem = count_problem(shards, split)
    if problem:
        raise AdaptError(f"{problem}; the manifest and the shards disagree: prepare the data again")


__all__ = ["MIN_SAMPLE_BYTES", "check_split_count", "count_problem", "counted_samples"]
