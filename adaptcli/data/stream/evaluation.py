"""The evaluation stream of a prepared shard folder: every sample exactly once over all ranks x workers.

With at least ``world_size * workers`` shards, shards are dealt round-robin to the (rank, worker)
slots; with fewer, every slot reads every shard and keeps the samples whose index in the split is its
slot modulo the slot count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from torch.utils.data import IterableDataset

from adaptcli.data.stream.batch import Batch, Collate
from adaptcli.data.stream.samples import SampleDecoder, multi_label_classes
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.tar_reader import SHARD_ERRORS, iter_samples, shard_error_reason
from adaptcli.data.stream.workers import ignore_stop_signals, iterate_stopping_workers, worker_slot
from adaptcli.errors import AdaptError


@dataclass
class DamageReport:
    """A worker's last item when it found damaged shards after its last batch (nothing to evaluate)."""

    damaged: dict[str, str]


class _EvalSource(IterableDataset):
    """Samples of this (rank, worker) slot: round-robin shards, or every N-th sample when few shards.

    A damaged shard is an :class:`~adaptcli.errors.AdaptError` naming it, or with ``skip_damaged``
    is skipped and listed in :attr:`damaged`.
    """

    def __init__(self, urls: list[str], rank: int, world_size: int, skip_damaged: bool = False) -> None:
        super().__init__()
        self.urls, self.rank, self.world_size, self.skip_damaged = urls, rank, world_size, skip_damaged
        self.damaged: dict[str, str] = {}

    def _samples(self, url: str) -> Iterator[dict[str, Any]]:
        try:
            yield from iter_samples(url)
        except SHARD_ERRORS as exc:
            if not self.skip_damaged:
                raise AdaptError(f"shard {url} is damaged ({shard_error_reason(exc)}); prepare the data again, or "
                                 "pass --skip-damaged to evaluate the other samples") from None
            self.damaged.setdefault(url, shard_error_reason(exc))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = worker_slot()
        slots, slot = self.world_size * workers, self.rank * workers + worker
        if len(self.urls) >= slots:
            for url in self.urls[slot::slots]:
                yield from self._samples(url)
            return
        index = 0
        for url in self.urls:
            for sample in self._samples(url):
                if index % slots == slot:
                    yield sample
                index += 1


class _EvalStage:
    def __init__(self, decoder: SampleDecoder, source: _EvalSource) -> None:
        self.decoder, self.source = decoder, source

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[Any]:
        for sample in src:
            try:
                yield self.decoder(sample)
            except AdaptError:
                raise
            except Exception as exc:
                where = f"sample {sample.get('__key__')} of shard {sample.get('__url__')}"
                if not self.source.skip_damaged:
                    raise AdaptError(f"{where} is damaged ({type(exc).__name__}: {exc}); prepare the data "
                                     "again, or pass --skip-damaged to evaluate the other samples") from None
                self.source.damaged.setdefault(str(sample.get("__url__")), f"{type(exc).__name__}: {exc}")


class _EvalReport:
    """Attach the damaged shards seen so far to each batch; a last :class:`DamageReport` when damage came
    after it."""

    def __init__(self, source: _EvalSource) -> None:
        self.source = source

    def __call__(self, src: Iterator[Batch]) -> Iterator[Batch | DamageReport]:
        reported: dict[str, str] = {}
        for batch in src:
            batch.damaged = reported = dict(self.source.damaged)
            yield batch
        if self.source.damaged != reported:
            yield DamageReport(dict(self.source.damaged))


class EvalStream:
    """The batches of an evaluation loader; :attr:`damaged` gathers the shards every worker skipped
    (complete once an iteration has ended)."""

    def __init__(self, loader: Iterable[Batch | DamageReport]) -> None:
        self.loader = loader
        self.damaged: dict[str, str] = {}

    def __iter__(self) -> Iterator[Batch]:
        for item in iterate_stopping_workers(self.loader):
            self.damaged.update(item.damaged)
            if isinstance(item, Batch):
                yield item


def eval_loader(shards: ShardFolder, split: str, spec: StreamSpec, batch_size: int, *,
                views: tuple[int, int] = (1, 1), rank: int = 0, world_size: int = 1,
                workers: int = 0, skip_damaged: bool = False, pin_memory: bool = False,
                labelled: bool = False) -> EvalStream:
    """Every sample of ``split`` exactly once over all ranks x workers, in a fixed order.

    Video inputs are ``B x V x 3 x T x H x W`` with ``V = clips * crops`` (clip-major); images
    ``B x 3 x H x W``. The last batch of each worker may be smaller. A damaged shard or sample is
    an error naming it; with ``skip_damaged`` it is left out and listed in the stream's ``damaged``.
    ``pin_memory``: page-locked batches, for non-blocking copies to a CUDA device. ``labelled``: every
    sample must have a class (label -1, unlabelled, is refused as for training: the feature cache
    trains on these samples).
    """
    import webdataset as wds

    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    manifest = shards.manifest
    urls = shards.urls(split)
    decoder = SampleDecoder(spec, manifest.modality, train=False, flip=False, views=views,
                            num_classes=manifest.num_classes, multi_label_classes=multi_label_classes(manifest),
                            unlabelled_ok=not labelled)
    source = _EvalSource(urls, rank, world_size, skip_damaged)
    pipeline = wds.DataPipeline(
        source,
        _EvalStage(decoder, source),
        wds.batched(batch_size, collation_fn=Collate(spec.mean, spec.std, manifest.modality == "video"),
                    partial=True),
        _EvalReport(source),
    )
    return EvalStream(wds.WebLoader(pipeline, batch_size=None, shuffle=False, num_workers=workers,
                                    pin_memory=pin_memory, worker_init_fn=ignore_stop_signals if workers else None))


__all__ = ["DamageReport", "EvalStream", "eval_loader"]
