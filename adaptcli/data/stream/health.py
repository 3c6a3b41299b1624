"""What went wrong in one worker's training stream: damaged shards, skipped samples, and the bound."""

from __future__ import annotations

import warnings
from pathlib import Path

from adaptcli.errors import AdaptError


class StreamHealth:
    """What went wrong in one worker's stream: damaged shards, skipped samples, and the bound.

    A training pass (every shard of this worker tried once) that reads no sample, or a run of
    failing samples as long as the whole split, is an :class:`~adaptcli.errors.AdaptError` naming
    the shards and the first reason, never an endless resampling loop.
    """

    def __init__(self, urls: list[str], max_failures: int) -> None:
        self.urls, self.max_failures = list(urls), max(1, max_failures)
        self.damaged: dict[str, str] = {}  # shard -> first reason (reported with every batch)
        self.skipped = 0  # samples skipped since the last batch
        self.tried: dict[str, str] = {}  # shards tried since the last sample was read -> reason
        self.failures: list[str] = []  # consecutive undecodable samples

    def shard_failed(self, url: str, reason: str) -> None:
        if url not in self.damaged:
            warnings.warn(f"skipping the rest of shard {url}: {reason}")
        self.damaged.setdefault(url, reason)
        self.tried.setdefault(url, reason)
        if set(self.urls) <= set(self.tried):
            names = ", ".join(Path(u).name for u in self.urls[:3]) + (", ..." if len(self.urls) > 3 else "")
            raise AdaptError(f"no training sample could be read from {len(self.urls)} shard(s) ({names}) of "
                             f"{Path(self.urls[0]).parent}: {self.tried[self.urls[0]]}; prepare the data again")

    def shard_read(self) -> None:
        self.tried.clear()

    def sample_failed(self, key: str, reason: str) -> None:
        warnings.warn(f"skipping sample {key}: {reason}")
        self.skipped += 1
        self.failures.append(f"sample {key}: {reason}")
        if len(self.failures) >= self.max_failures:
            raise AdaptError(f"{len(self.failures)} training samples in a row could not be decoded (first: "
                             f"{self.failures[0]}); check the shards in {Path(self.urls[0]).parent}")

    def sample_ok(self) -> None:
        self.failures.clear()

    def drain(self) -> tuple[dict[str, str], int]:
        """Damaged shards so far and samples skipped since the last call."""
        skipped, self.skipped = self.skipped, 0
        return dict(self.damaged), skipped


__all__ = ["StreamHealth"]
