"""The training batches of each epoch: the shard stream, or the cached features of a linear probe.

:class:`EpochStreams` starts the loader of epoch e+1 while the last batches of epoch e train, so the
first batch of the next epoch is decoded before it is asked for (no stall at epoch boundaries), and
:class:`DataWait` times how long the training loop waits for its batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from adaptcli.data.stream.batch import Batch
from adaptcli.engine.feature_store import CacheStore
from adaptcli.engine.features import FeatureCache, HeadOnly, cache_training_features
from adaptcli.runs.folder import RunDir
from adaptcli.runs.session import Session

#: A run whose training loop waits for data more than this share of its time says so, once.
WAIT_WARNING_SHARE = 0.2


def epoch_batches(session: Session, epoch: int, accelerator: Any, *, pin_memory: bool,
                  features: FeatureCache | None = None) -> Iterator[Batch]:
    """This process's batches of ``epoch`` (a pure function of seed, epoch, rank and worker)."""
    from adaptcli.data.stream.train import train_loader
    from adaptcli.engine.device import decodes_on_device

    if features is not None:
        return iter(features.epoch_batches(epoch))
    config = session.config
    stream, _ = train_loader(
        session.shards, config.data.train_split, session.spec, config.train.batch_size,
        rank=accelerator.process_index, world_size=accelerator.num_processes, workers=config.data.workers,
        seed=config.train.seed, epoch=epoch, pin_memory=pin_memory,
        encoded=decodes_on_device(config.data.decode, accelerator.device),
    )
    return stream.start(epoch)  # its workers start now


class EpochStreams:
    """Each epoch's batches from ``open_epoch(epoch)``, the next epoch's loader workers started early.

    Each epoch keeps its own loader, built exactly as before, so every batch (and a mid-epoch resume)
    is unchanged; only *when* its workers start moves. :meth:`prefetch` starts epoch e+1's workers
    once epoch e's workers have decoded their share (``lead`` batches before its end, the batches
    already queued), so they fill their shuffle buffers and decode the first batches while the last
    steps, validation and the checkpoint run. Workers that persist across epochs
    (``persistent_workers``) were not used: the DataLoader hands out batches from its workers in
    turn across epoch boundaries, so with ``steps % workers != 0`` epoch e+1 would start on another
    worker than today and its batches would differ.

    Opening a DataLoader iterator draws one 64-bit seed from torch's global RNG; the early start
    runs under :func:`torch.random.fork_rng` and the draw is made when the epoch begins, so the
    random state of training is what it would be without prefetching.
    """

    def __init__(self, open_epoch: Callable[[int], Iterator[Batch]], workers: int,
                 features: FeatureCache | None = None) -> None:
        self.open_epoch, self.workers, self.features = open_epoch, workers, features
        self._ready: tuple[int, Iterator[Batch]] | None = None

    @classmethod
    def of(cls, session: Session, accelerator: Any, *, pin_memory: bool,
           features: FeatureCache | None = None) -> EpochStreams:
        """The training streams of a session (cached features: nothing to prefetch)."""
        def open_epoch(epoch: int) -> Iterator[Batch]:
            return epoch_batches(session, epoch, accelerator, pin_memory=pin_memory, features=features)

        return cls(open_epoch, 0 if features is not None else session.config.data.workers, features)

    @classmethod
    def cached(cls, session: Session, head: HeadOnly, accelerator: Any, *, steps: int, pin_memory: bool,
               damaged: dict[str, str], store: CacheStore | None = None) -> EpochStreams:
        """A linear probe's streams: the frozen backbone runs once over the training split now (the shards
        it skipped as damaged are added to ``damaged``), every epoch replays those features (kept where
        ``store`` says: memory by default; :meth:`close` deletes a disk cache)."""
        features = cache_training_features(session, head, accelerator, steps=steps, pin_memory=pin_memory,
                                           damaged=damaged, store=store or CacheStore())
        return cls.of(session, accelerator, pin_memory=pin_memory, features=features)

    @property
    def lead(self) -> int:
        """Batches before the end of an epoch at which the next epoch's workers start: the ones queued
        by the DataLoader (``prefetch_factor`` = 2 per worker), after which the current workers are idle."""
        return 2 * self.workers

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of ``epoch``: the prefetched stream when :meth:`prefetch` started it."""
        import torch

        ready, self._ready = self._ready, None
        if ready is not None and ready[0] == epoch:
            torch.empty((), dtype=torch.int64).random_()  # the seed draw opening it made (see class doc)
            return ready[1]
        return self.open_epoch(epoch)

    def prefetch(self, epoch: int) -> None:
        """Start ``epoch``'s loader workers now (once; nothing without workers)."""
        import torch

        if self.workers == 0 or (self._ready is not None and self._ready[0] == epoch):
            return
        with torch.random.fork_rng(devices=[]):
            self._ready = (epoch, self.open_epoch(epoch))

    def close(self) -> None:
        """Drop a prefetched stream that will not be used (its workers stop when it is collected); delete a
        disk feature cache."""
        self._ready = None
        if self.features is not None:
            self.features.close()


@dataclass
class DataWait:
    """Seconds the training loop waited for batches, and the loop's wall time, for the data-wait share."""

    waited: float = 0.0
    wall: float = 0.0
    warned: bool = False

    def timed(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        """``batches``, adding the time each ``next`` takes to :attr:`waited`."""
        while True:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.waited += time.perf_counter() - start
            yield batch

    def add_outside_loop(self, seconds: float) -> None:
        """Time spent getting a stream before the loop (starting workers): waiting, and loop time."""
        self.waited += seconds
        self.wall += seconds

    @property
    def share(self) -> float:
        """Waiting as a fraction of the training loop's wall time (0 before any training)."""
        return self.share_with(0.0)

    def share_with(self, running: float) -> float:
        """:attr:`share` counting ``running`` more seconds of an epoch loop not yet added to :attr:`wall`."""
        wall = self.wall + running
        return min(1.0, self.waited / wall) if wall > 0 else 0.0

    def warning(self, workers: int) -> str | None:
        """The one-time note when the share is above :data:`WAIT_WARNING_SHARE`, with the fix."""
        if self.warned or self.share <= WAIT_WARNING_SHARE:
            return None
        self.warned = True
        return (f"note: training waited for data {100 * self.share:.0f}% of its time; the device idles while the "
                f"loader decodes: raise data.workers (now {workers}) if CPU cores are free, decode on the GPU "
                "(data.decode=cuda, on a CUDA machine), or store smaller frames (prepare --short-side)")


def log_first_keys(run: RunDir, accelerator: Any, epoch: int, keys: list[str]) -> None:
    """Which samples each rank started the epoch with (shows that ranks read different data)."""
    from accelerate.utils import gather_object

    per_rank = gather_object([list(keys)]) if accelerator.num_processes > 1 else [list(keys)]
    if accelerator.is_main_process:
        run.log({"event": "data", "epoch": epoch + 1, "first_batch_keys": per_rank})
