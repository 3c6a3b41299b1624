"""The training stream of a prepared shard folder, for images and videos alike.

``resampled`` shards, drawn independently by every (rank, worker) from seeds derived from
``(seed, epoch, rank, worker)``, a shuffle buffer of raw samples, decode + augment, fixed-size
batches; every worker stops after its share of the epoch's steps (no batch is decoded that the
epoch does not use) and the epoch is cut at ``steps`` batches, so every rank runs the same
number of steps. Never pass these loaders to ``accelerate``'s ``prepare`` (that would split again).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from typing import Any

from adaptcli.data.stream.batch import Batch, Collate, EncodedCollate
from adaptcli.data.stream.health import StreamHealth
from adaptcli.data.stream.samples import SampleDecoder, multi_label_classes
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.tar_reader import SHARD_ERRORS, iter_samples, shard_error_reason
from adaptcli.data.stream.workers import WorkerSeed, ignore_stop_signals, seed_of, stop_workers, worker_slot
from adaptcli.errors import AdaptError


class _ReadShards:
    """``{"url": ...}`` -> the samples of that shard; a damaged shard is reported and skipped."""

    def __init__(self, health: StreamHealth) -> None:
        self.health = health

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for shard in src:
            url = shard["url"]
            try:
                for sample in iter_samples(url):
                    self.health.shard_read()
                    yield sample
            except SHARD_ERRORS as exc:
                self.health.shard_failed(url, shard_error_reason(exc))


class _TrainStage:
    """Shuffle raw samples and decode them, with an RNG seeded by (seed, epoch, rank, worker)."""

    def __init__(self, decoder: SampleDecoder, seed: int, epoch: int, rank: int, buffer: int,
                 health: StreamHealth) -> None:
        self.decoder, self.seed, self.epoch, self.rank, self.buffer = decoder, seed, epoch, rank, buffer
        self.health = health

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[Any]:
        import webdataset as wds

        rng = random.Random(seed_of(self.seed, self.epoch, self.rank, worker_slot()[0], 1))
        if self.buffer > 1:
            src = wds.shuffle(bufsize=self.buffer, initial=max(1, self.buffer // 2), rng=rng)(src)
        copies = self.decoder.spec.repeated_aug
        for sample in src:
            try:
                decoded = self.decoder.decode(sample, rng, copies)
            except AdaptError:  # the data contradicts its manifest: no sample can be trusted
                raise
            except Exception as exc:  # a damaged sample must not stop training; a stream of them does
                self.health.sample_failed(str(sample.get("__key__")), f"{type(exc).__name__}: {exc}")
                continue
            self.health.sample_ok()
            yield from decoded  # repeated augmentation: the copies sit side by side in one batch


class _WorkerShare:
    """Stop this worker after its share of ``steps`` batches: the DataLoader takes batches from the
    workers in turn (worker 0 first), so worker w of W serves ``steps // W`` batches, plus one when
    ``w < steps % W``, exactly the ones a cut at ``steps`` keeps. Without it every
    worker would decode ``prefetch_factor`` batches past the end of each epoch for nothing."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, src: Iterator[Batch]) -> Iterator[Batch]:
        worker, workers = worker_slot()
        yield from itertools.islice(src, self.steps // workers + (worker < self.steps % workers))


class _Report:
    """Attach this worker's damaged shards and skipped-sample count to each batch."""

    def __init__(self, health: StreamHealth) -> None:
        self.health = health

    def __call__(self, src: Iterator[Batch]) -> Iterator[Batch]:
        for batch in src:
            batch.damaged, batch.skipped = self.health.drain()
            yield batch


class TrainStream:
    """``steps`` batches of exactly ``batch_size`` per iteration; iteration k uses epoch ``epoch + k``.

    Building it again with the same arguments yields identical batches.
    """

    def __init__(self, urls: list[str], decoder: SampleDecoder, batch_size: int, steps: int, *,
                 rank: int, workers: int, seed: int, epoch: int, buffer: int, max_failures: int = 1000,
                 pin_memory: bool = False) -> None:
        self.urls, self.decoder, self.batch_size, self.steps = urls, decoder, batch_size, steps
        self.pin_memory = pin_memory
        self.max_failures = max_failures
        self.rank, self.workers, self.seed, self.epoch, self.buffer = rank, workers, seed, epoch, buffer
        video = decoder.modality == "video"
        self.collate = (EncodedCollate(decoder.spec.img_size, decoder.spec.mean, decoder.spec.std, video)
                        if decoder.encoded else Collate(decoder.spec.mean, decoder.spec.std, video))

    def __len__(self) -> int:
        return self.steps

    def loader(self, epoch: int):  # -> torch.utils.data.DataLoader
        """The DataLoader of one epoch: one pass over it gives this rank's ``steps`` batches."""
        import webdataset as wds
        from torch.utils.data import DataLoader

        health = StreamHealth(self.urls, self.max_failures)
        pipeline = wds.DataPipeline(
            wds.ResampledShards(self.urls, seed=seed_of(self.seed, epoch) % (1 << 31),
                                worker_seed=WorkerSeed(self.rank), deterministic=True),
            _ReadShards(health),
            _TrainStage(self.decoder, self.seed, epoch, self.rank, self.buffer, health),
            wds.batched(self.batch_size * self.decoder.spec.repeated_aug, collation_fn=self.collate, partial=False),
            _WorkerShare(self.steps),
            _Report(health),
        )
        return DataLoader(pipeline, batch_size=None, shuffle=False, num_workers=self.workers,
                          persistent_workers=False, pin_memory=self.pin_memory,
                          worker_init_fn=ignore_stop_signals if self.workers else None)

    def start(self, epoch: int) -> Iterator[Batch]:
        """The ``steps`` batches of ``epoch``, its loader's workers started now (they begin decoding at
        once, unlike a generator's lazy start): ``with_epoch(steps)``'s cut of repeated passes."""
        loader = self.loader(epoch)
        return itertools.islice(_passes(iter(loader), loader), self.steps)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        yield from self.start(epoch)


def _passes(first: Iterator[Any], loader: Iterable[Any]) -> Iterator[Any]:
    """``first``, then further passes over ``loader`` while a pass yields anything."""
    source = first
    try:
        while True:
            count = 0
            for item in source:
                yield item
                count += 1
            if count == 0:
                return
            source = iter(loader)
    finally:  # an error or a stop mid-pass: the workers end now (stop_workers says why)
        stop_workers(source)


def steps_per_epoch(samples: int, batch_size: int, world_size: int, max_steps: int | None = None) -> int:
    """``max(1, samples // (batch_size * world_size))``, capped at ``max_steps`` when given."""
    steps = max(1, samples // (batch_size * world_size))
    return steps if max_steps is None else min(steps, max_steps)


def train_loader(shards: ShardFolder, split: str, spec: StreamSpec, batch_size: int, *, rank: int = 0,
                 world_size: int = 1, workers: int = 0, seed: int = 0, epoch: int = 0,
                 max_steps: int | None = None, pin_memory: bool = False,
                 encoded: bool = False) -> tuple[TrainStream, int]:
    """The shuffled, resampled, augmented training stream and its steps per epoch.

    With at least ``world_size`` shards, rank r draws only from shards r, r + world_size, ...
    (disjoint data per rank); with fewer, every rank draws from all of them.

    Every rank yields exactly :func:`steps_per_epoch` batches of exactly ``batch_size``. Horizontal
    flip needs both ``spec.flip`` and the manifest's ``hflip`` (False where left/right is a label).
    ``pin_memory``: page-locked batches, for non-blocking copies to a CUDA device (the caller decides).
    ``encoded``: batches carry the chosen frames' JPEG bytes, boxes and flips instead of pixels
    (``data.decode: cuda``); :meth:`Batch.to <adaptcli.data.stream.batch.Batch.to>` decodes them on the
    device. The random draws are the same, so the batches hold the same samples, crops and flips.
    """
    manifest = shards.manifest
    urls = shards.urls(split)
    if len(urls) >= world_size:  # split by node: each rank resamples only its own shards
        urls = urls[rank::world_size]
    shards.require_shards(urls)
    samples = manifest.split(split).samples
    steps = steps_per_epoch(samples, batch_size, world_size, max_steps)
    decoder = SampleDecoder(spec, manifest.modality, train=True, flip=spec.flip and manifest.hflip,
                            num_classes=manifest.num_classes, multi_label_classes=multi_label_classes(manifest),
                            encoded=encoded)
    stream = TrainStream(urls, decoder, batch_size, steps, rank=rank, workers=workers, seed=seed,
                         epoch=epoch, buffer=spec.shuffle_buffer, max_failures=max(100, samples),
                         pin_memory=pin_memory)
    return stream, steps


__all__ = ["TrainStream", "steps_per_epoch", "train_loader"]
