"""Know the size before writing it: encode a few samples, project the shards' bytes and CPU time.

``prepare`` encodes :data:`SAMPLED` items spread over what it is about to write (in this process,
timed on its CPU clock), projects bytes and CPU-seconds for all of them from the means, prints
both, and refuses in one line when the target's filesystem has less free space than the projection.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from adaptcli.data.prepare.encode import EncodeOptions, Encoded, encode_item
from adaptcli.data.prepare.sources.base import Item
from adaptcli.errors import AdaptError

#: Items encoded to project from: enough to average clip lengths, few enough to cost seconds.
SAMPLED = 8
_BLOCK = 512
_TAR_END = 1024 + 10240 // 2  # per shard: the end-of-archive blocks, and half a record of padding on average


def tar_bytes(sample: Encoded) -> int:
    """The bytes ``sample`` takes in a GNU tar shard: a header and padded data per member."""
    total = 0
    for name, data in sample.files:
        member = f"{sample.key}.{name}"
        if len(member.encode()) > 100:  # GNU long name: one more header plus the name's blocks
            total += _BLOCK + -(-len(member.encode()) // _BLOCK) * _BLOCK
        total += _BLOCK + -(-len(data) // _BLOCK) * _BLOCK
    return total


@dataclass
class Projection:
    """Bytes and CPU-seconds projected for ``samples`` items from ``sampled`` of them encoded here."""

    samples: int
    sampled: int
    bytes: int
    cpu_seconds: float  # projected for all samples
    sampled_cpu_seconds: float  # what encoding the sampled items cost

    def line(self, what: str, unit: str, workers: int) -> str:
        """``ssv2: projected 270.0 GiB of shards and 41.2 CPU-hours (at best 5.1 hours on 8 workers) for
        220,847 clips (from 8 clips encoded first)``."""
        workers = max(1, workers)
        wall = f" (at best {duration_text(self.cpu_seconds / workers)} on {workers} workers)" if workers > 1 else ""
        return (f"{what}: projected {size_text(self.bytes)} of shards and {duration_text(self.cpu_seconds, 'CPU-')}"
                f"{wall} for {self.samples:,} {unit}s (from {self.sampled} {unit}s encoded first)")


def duration_text(seconds: float, prefix: str = "") -> str:
    """``41.2 CPU-hours``, ``3.5 minutes``, ``12.0 seconds``: the largest unit that is at least 2."""
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {prefix}{unit}"
    return f"{seconds:.1f} {prefix}seconds"


def size_text(count: float) -> str:
    """``1.5 GiB``: binary units, as ``du -h`` shows them."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def spread(items: list[Item], count: int = SAMPLED) -> list[Item]:
    """``count`` items evenly spread over ``items`` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[(2 * i + 1) * len(items) // (2 * count)] for i in range(count)]


def project(items: list[Item], options: EncodeOptions, shards: int) -> Projection | None:
    """Encode a spread of ``items``, project for all of them; None when every sampled one is unreadable."""
    sizes, seconds = [], 0.0
    for item in spread(items):
        start = time.process_time()
        result = encode_item(item, options)
        seconds += time.process_time() - start
        if isinstance(result, Encoded):
            sizes.append(tar_bytes(result))
    if not sizes:
        return None
    count = len(items)
    per_item = sum(sizes) / len(sizes)
    return Projection(samples=count, sampled=len(spread(items)), bytes=int(per_item * count) + shards * _TAR_END,
                      cpu_seconds=seconds / len(spread(items)) * count, sampled_cpu_seconds=seconds)


def free_bytes(path: Path) -> int:
    """Free bytes (for this user) on the filesystem ``path`` is, or would be created, on."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def check_space(projection: Projection, out: Path) -> None:
    """Refuse in one line when ``out``'s filesystem has less free space than the projection."""
    free = free_bytes(out)
    if free < projection.bytes:
        raise AdaptError(f"--shards {out}: the projected {size_text(projection.bytes)} of shards do not fit in the "
                         f"{size_text(free)} free there: free space, choose another folder, store less "
                         "(--fps, --short-side) or pass --ignore-space to go on anyway")


__all__ = ["duration_text", "SAMPLED", "Projection", "project", "spread", "free_bytes", "check_space", "tar_bytes", "size_text"]
