"""Training and evaluation streams from a prepared shard folder, for images and videos alike.

Train: ``resampled`` shards, drawn independently by every (rank, worker) from seeds derived
from ``(seed, epoch, rank, worker)``, a shuffle buffer of raw samples, decode + augment, fixed-size
batches; every worker stops after its share of the epoch's steps (no batch is decoded that the
epoch does not use) and the epoch is cut at ``steps`` batches, so every rank runs the same
number of steps. Never pass these loaders to ``accelerator.prepare`` (that would split again).

Eval: every sample exactly once over all ranks x workers. With at least ``world_size * workers``
shards, shards are dealt round-robin to the (rank, worker) slots; with fewer, every slot reads
every shard and keeps the samples whose index in the split is its slot modulo the slot count.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset

from adaptcli.data.batch_decode import EncodedClip, EncodedCollate
from adaptcli.data.clip_augment import ClipRandAugment
from adaptcli.data.config import DataConfig
from adaptcli.data.manifest import Manifest, read_manifest
from adaptcli.data.sampling import clip_indices
from adaptcli.data.tar_reader import BadShard, iter_samples
from adaptcli.data.transforms import eval_boxes, normalise, open_image, render, train_box
from adaptcli.errors import AdaptError

IMAGE_FIELDS = ("jpg", "jpeg", "png", "webp")


@dataclass
class StreamSpec:
    """What the model wants from the stream (size, frames, normalisation) and how to augment."""

    img_size: int
    num_frames: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sampling: str = "segment"
    stride: int = 4
    augment: str = "random_resized_crop"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    crop_pct: float = 0.875
    shuffle_buffer: int = 500
    rand_augment: str | None = None

    @classmethod
    def from_config(cls, data: DataConfig, img_size: int, num_frames: int, mean: Iterable[float],
                    std: Iterable[float]) -> "StreamSpec":
        """Take the sampling and augmentation settings from a :class:`DataConfig`."""
        return cls(img_size=img_size, num_frames=num_frames, mean=tuple(mean), std=tuple(std),  # type: ignore[arg-type]
                   sampling=data.sampling, stride=data.stride, augment=data.augment,
                   crop_scale=(float(data.crop_scale[0]), float(data.crop_scale[1])), flip=data.flip,
                   crop_pct=data.crop_pct, shuffle_buffer=data.shuffle_buffer, rand_augment=data.rand_augment)


# --------------------------------------------------------------------------- sample decoding


def seed_of(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike ``hash`` of strings)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value * 6364136223846793005 + int(part) + 1442695040888963407) % (1 << 64)
    return value >> 1


def frame_fields(sample: dict[str, Any]) -> list[bytes]:
    """The ``NNN.jpg`` fields of a video sample, in frame order."""
    names = [k for k in sample if k.endswith(".jpg") and k[:-4].isdigit()]
    return [sample[k] for k in sorted(names, key=lambda k: int(k[:-4]))]


def image_field(sample: dict[str, Any]) -> bytes:
    for name in IMAGE_FIELDS:
        if name in sample:
            return sample[name]
    raise ValueError(f"sample {sample.get('__key__')} has no image field")


def label_of(sample: dict[str, Any]) -> int:
    raw = sample.get("cls")
    return -1 if raw is None else int(raw.decode() if isinstance(raw, bytes) else raw)


def multi_hot_of(sample: dict[str, Any], num_classes: int) -> np.ndarray:
    """A multi-label sample's ``labels`` (JSON list of class indices) as a float32 multi-hot vector."""
    raw = sample.get("labels")
    if raw is None:
        raise ValueError(f"sample {sample.get('__key__')} has no 'labels' field (multi-label shards)")
    indices = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise ValueError(f"sample {sample.get('__key__')}: 'labels' is not a list of class indices")
    outside = [i for i in indices if not 0 <= i < num_classes]
    if outside:
        raise AdaptError(f"label {outside[0]} of sample {sample.get('__key__')} in {sample.get('__url__')} is outside "
                         f"the {num_classes} classes of dataset.json: the manifest and the shards disagree; "
                         "prepare the data again")
    target = np.zeros(num_classes, dtype=np.float32)
    target[indices] = 1.0
    return target


class SampleDecoder:
    """Raw sample -> ``(inputs, label, key)`` with the spec's sampling and spatial transform."""

    def __init__(self, spec: StreamSpec, modality: str, train: bool, flip: bool,
                 views: tuple[int, int] = (1, 1), num_classes: int | None = None,
                 multi_label_classes: int | None = None, unlabelled_ok: bool | None = None,
                 encoded: bool = False) -> None:
        self.spec, self.modality, self.train, self.flip = spec, modality, train, flip
        # encoded (training with data.decode: cuda): hand over the chosen frames' bytes, box and flip
        self.encoded = encoded and train
        # label -1 (unlabelled: SSv2's test split) may pass to eval, whose scoring refuses it in one line
        self.lowest_label = -1 if ((not train) if unlabelled_ok is None else unlabelled_ok) else 0
        self.multi_label_classes = multi_label_classes  # set: labels are multi-hot vectors
        self.clips, self.crops = views if modality == "video" else (1, 1)
        self.num_classes = num_classes
        self.rand_augment = ClipRandAugment(spec.rand_augment, spec.mean) if train and spec.rand_augment else None

    def __call__(self, sample: dict[str, Any], rng: random.Random | None = None):
        s = self.spec
        key = sample["__key__"]
        if self.multi_label_classes is None:
            label: int | np.ndarray = label_of(sample)
            outside = label < self.lowest_label or (self.num_classes is not None and label >= self.num_classes)
        else:
            label = multi_hot_of(sample, self.multi_label_classes)
            outside = False  # multi_hot_of refuses an index outside the classes itself
        if outside:
            raise AdaptError(f"label {label} of sample {key} in {sample.get('__url__')} is outside the "
                             f"{self.num_classes} classes of dataset.json (0..{(self.num_classes or 1) - 1}): the "
                             "manifest and the shards disagree; prepare the data again")
        video = self.modality == "video"
        raw = frame_fields(sample) if video else [image_field(sample)]
        if not raw:
            raise ValueError(f"sample {key} has no frames")
        if not self.train:  # V x T x H x W x 3 uint8 (an image: H x W x 3)
            views = eval_views(raw, s, video, (self.clips, self.crops))
            return (views if video else views[0][0]), label, key
        clips = [clip_indices(s.sampling, len(raw), s.num_frames, True, rng, s.stride)] if video else [[0]]  # type: ignore[arg-type]
        first = open_image(raw[clips[0][0]])
        width, height = first.size
        assert rng is not None
        boxes = [train_box(s.augment, width, height, s.img_size, s.crop_scale, s.crop_pct, rng)]  # type: ignore[arg-type]
        flip = self.flip and rng.random() < 0.5
        if self.encoded:
            return EncodedClip([raw[i] for i in clips[0]], boxes[0], flip), label, key
        views = render_views(raw, clips, boxes, s.img_size, flip)
        if self.rand_augment is not None:
            assert rng is not None
            views[0] = self.rand_augment(views[0], rng)
        if self.modality == "image":
            return views[0][0], label, key  # H x W x 3 uint8
        return views[0], label, key  # T x H x W x 3 uint8


def render_views(frames: list[Any], clips: list[list[int]], boxes: list[Any], size: int,
                 flip: bool = False) -> list[np.ndarray]:
    """Every clip (frame indices) cut at every box, clip-major: T x H x W x 3 uint8 each. ``frames`` hold
    encoded bytes (shards) or decoded H x W x 3 arrays (a video file); each (frame, box) is rendered once."""
    from PIL import Image

    views = []
    cache: dict[tuple[int, int], np.ndarray] = {}  # (frame, box) -> rendered frame
    for indices in clips:
        for b, box in enumerate(boxes):
            for i in indices:
                if (i, b) not in cache:
                    frame = frames[i]
                    image = Image.fromarray(frame) if isinstance(frame, np.ndarray) else open_image(frame)
                    cache[(i, b)] = render(image, box, size, flip)
            views.append(np.stack([cache[(i, b)] for i in indices]))
    return views


def eval_views(frames: list[Any], spec: StreamSpec, video: bool, views: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The evaluation transform of one sample: V x T x H x W x 3 uint8, ``views`` = (clips, crops) of a
    video, clip-major (an image: its one frame, one view). The eval stream (:class:`SampleDecoder`) and
    ``adaptcli predict`` on raw files both cut their inputs here."""
    clips, crops = views if video else (1, 1)
    indices = [clip_indices(spec.sampling, len(frames), spec.num_frames, False, None, spec.stride, c, clips)  # type: ignore[arg-type]
               for c in range(clips)] if video else [[0]]
    first = frames[indices[0][0]]
    height, width = first.shape[:2] if isinstance(first, np.ndarray) else open_image(first).size[::-1]
    boxes = eval_boxes(spec.augment, width, height, crops, spec.crop_pct)  # type: ignore[arg-type]
    return np.stack(render_views(frames, indices, boxes, spec.img_size))


class Collate:
    """Stack uint8 samples and normalise the whole batch at once (one float copy, in the worker)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], video: bool) -> None:
        self.mean, self.std, self.video = mean, std, video

    def __call__(self, samples: list[tuple[np.ndarray, int, str]]) -> dict[str, Any]:
        import torch.utils.data

        arrays, labels, keys = zip(*samples)
        shared = torch.utils.data.get_worker_info() is not None
        if isinstance(labels[0], np.ndarray):  # multi-label: B x C multi-hot float32
            targets = torch.from_numpy(np.stack(labels))
        else:
            targets = torch.tensor(labels, dtype=torch.long)
        return {"inputs": normalise(np.stack(arrays), self.mean, self.std, self.video, shared=shared),
                "labels": targets, "keys": list(keys)}


# --------------------------------------------------------------------------- pipeline stages


def _worker() -> tuple[int, int]:
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class _WorkerSeed:
    """``worker_seed`` for ResampledShards: depends only on (rank, worker), never on the pid."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self) -> int:
        return self.rank * 1000 + _worker()[0]


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
        import warnings

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
        import warnings

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


class _TrainStage:
    """Shuffle raw samples and decode them, with an RNG seeded by (seed, epoch, rank, worker)."""

    def __init__(self, decoder: SampleDecoder, seed: int, epoch: int, rank: int, buffer: int,
                 health: StreamHealth) -> None:
        self.decoder, self.seed, self.epoch, self.rank, self.buffer = decoder, seed, epoch, rank, buffer
        self.health = health

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[Any]:
        import webdataset as wds

        rng = random.Random(seed_of(self.seed, self.epoch, self.rank, _worker()[0], 1))
        if self.buffer > 1:
            src = wds.shuffle(bufsize=self.buffer, initial=max(1, self.buffer // 2), rng=rng)(src)
        for sample in src:
            try:
                decoded = self.decoder(sample, rng)
            except AdaptError:  # the data contradicts its manifest: no sample can be trusted
                raise
            except Exception as exc:  # a damaged sample must not stop training; a stream of them does
                self.health.sample_failed(str(sample.get("__key__")), f"{type(exc).__name__}: {exc}")
                continue
            self.health.sample_ok()
            yield decoded


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
            except (OSError, BadShard, UnicodeDecodeError) as exc:
                self.health.shard_failed(url, _reason(exc))


class _WorkerShare:
    """Stop this worker after its share of ``steps`` batches: the DataLoader takes batches from the
    workers in turn (worker 0 first), so worker w of W serves ``steps // W`` batches, plus one when
    ``w < steps % W``, exactly the ones a cut at ``steps`` keeps. Without it every
    worker would decode ``prefetch_factor`` batches past the end of each epoch for nothing."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        worker, workers = _worker()
        yield from itertools.islice(src, self.steps // workers + (worker < self.steps % workers))


class _Report:
    """Attach this worker's damaged shards and skipped-sample count to each batch."""

    def __init__(self, health: StreamHealth) -> None:
        self.health = health

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for batch in src:
            batch["damaged"], batch["skipped"] = self.health.drain()
            yield batch


def _reason(exc: BaseException) -> str:
    """``No such file or directory``, ``truncated member``: the cause without the path again."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    return text.split(": ", 1)[1] if isinstance(exc, BadShard) and ": " in text else text


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
        except (OSError, BadShard, UnicodeDecodeError) as exc:
            if not self.skip_damaged:
                raise AdaptError(f"shard {url} is damaged ({_reason(exc)}); prepare the data again, or pass "
                                 "--skip-damaged to evaluate the other samples") from None
            self.damaged.setdefault(url, _reason(exc))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = _worker()
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
    """Attach the damaged shards seen so far to each batch; one last item when damage came after it."""

    def __init__(self, source: _EvalSource) -> None:
        self.source = source

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        reported: dict[str, str] = {}
        for batch in src:
            batch["damaged"] = reported = dict(self.source.damaged)
            yield batch
        if self.source.damaged != reported:
            yield {"damaged": dict(self.source.damaged)}


# --------------------------------------------------------------------------- loaders


def _urls(shards_dir: str | Path, manifest: Manifest, split: str) -> list[str]:
    info = manifest.split(split)
    if not info.shards:
        raise AdaptError(f"split '{split}' of {shards_dir} has no samples")
    return [str(Path(shards_dir) / name) for name in info.shards]


def require_shards(shards_dir: str | Path, urls: list[str]) -> None:
    """A one-line error when every shard of ``urls`` is missing (some missing: the stream skips them)."""
    missing = [url for url in urls if not Path(url).is_file()]
    if missing and len(missing) == len(urls):
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise AdaptError(f"the training shards of {shards_dir} are missing ({Path(missing[0]).name}{more}); "
                         "prepare the data again")


def split_urls(shards_dir: str | Path, split: str, manifest: Manifest | None = None) -> list[str]:
    """The shard files of ``split`` (paths), as listed in the folder's manifest (read when not given)."""
    return _urls(shards_dir, manifest or read_manifest(shards_dir), split)


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
                                worker_seed=_WorkerSeed(self.rank), deterministic=True),
            _ReadShards(health),
            _TrainStage(self.decoder, self.seed, epoch, self.rank, self.buffer, health),
            wds.batched(self.batch_size, collation_fn=self.collate, partial=False),
            _WorkerShare(self.steps),
            _Report(health),
        )
        return DataLoader(pipeline, batch_size=None, shuffle=False, num_workers=self.workers,
                          persistent_workers=False, pin_memory=self.pin_memory,
                          worker_init_fn=ignore_stop_signals if self.workers else None)

    def start(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The ``steps`` batches of ``epoch``, its loader's workers started now (they begin decoding at
        once, unlike a generator's lazy start): ``with_epoch(steps)``'s cut of repeated passes."""
        loader = self.loader(epoch)
        return itertools.islice(_passes(iter(loader), loader), self.steps)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        self.epoch += 1
        yield from self.start(epoch)


def _passes(first: Iterator[Any], loader: Iterable[Any]) -> Iterator[Any]:
    """``first``, then further passes over ``loader`` while a pass yields anything."""
    source = first
    while True:
        count = 0
        for item in source:
            yield item
            count += 1
        if count == 0:
            return
        source = iter(loader)


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of every loader: a worker ignores SIGTERM and SIGUSR1. Schedulers (Slurm on
    preemption) signal the whole process group; a worker killed by it would fail the trainer's next
    fetch with a traceback and no checkpoint. The trainer catches the signal, saves, and stops its
    workers itself (they also exit when the trainer's process is gone)."""
    for name in ("SIGTERM", "SIGUSR1"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


def _multi_label_classes(manifest: Manifest) -> int | None:
    return manifest.num_classes if manifest.multi_label else None


def steps_per_epoch(samples: int, batch_size: int, world_size: int, max_steps: int | None = None) -> int:
    """``max(1, samples // (batch_size * world_size))``, capped at ``max_steps`` when given."""
    steps = max(1, samples // (batch_size * world_size))
    return steps if max_steps is None else min(steps, max_steps)


def train_loader(shards_dir: str | Path, split: str, spec: StreamSpec, batch_size: int, *, rank: int = 0,
                 world_size: int = 1, workers: int = 0, seed: int = 0, epoch: int = 0,
                 max_steps: int | None = None, pin_memory: bool = False,
                 manifest: Manifest | None = None, encoded: bool = False) -> tuple[TrainStream, int]:
    """The shuffled, resampled, augmented training stream and its steps per epoch.

    With at least ``world_size`` shards, rank r draws only from shards r, r + world_size, ...
    (disjoint data per rank); with fewer, every rank draws from all of them.

    Every rank yields exactly :func:`steps_per_epoch` batches of exactly ``batch_size``. Horizontal
    flip needs both ``spec.flip`` and the manifest's ``hflip`` (False where left/right is a label).
    ``pin_memory``: page-locked batches, for non-blocking copies to a CUDA device (the caller decides).
    ``manifest``: the folder's ``dataset.json`` as the caller read it (read here when not given).
    ``encoded``: batches carry the chosen frames' JPEG bytes, boxes and flips instead of pixels
    (``data.decode: cuda``); :func:`adaptcli.data.batch_decode.batch_inputs` decodes them on the device.
    The random draws are the same, so the batches hold the same samples, crops and flips.
    """
    manifest = manifest or read_manifest(shards_dir)
    urls = _urls(shards_dir, manifest, split)
    if len(urls) >= world_size:  # split by node: each rank resamples only its own shards
        urls = urls[rank::world_size]
    require_shards(shards_dir, urls)
    samples = manifest.split(split).samples
    steps = steps_per_epoch(samples, batch_size, world_size, max_steps)
    decoder = SampleDecoder(spec, manifest.modality, train=True, flip=spec.flip and manifest.hflip,
                            num_classes=manifest.num_classes, multi_label_classes=_multi_label_classes(manifest),
                            encoded=encoded)
    stream = TrainStream(urls, decoder, batch_size, steps, rank=rank, workers=workers, seed=seed,
                         epoch=epoch, buffer=spec.shuffle_buffer, max_failures=max(100, samples),
                         pin_memory=pin_memory)
    return stream, steps


def eval_loader(shards_dir: str | Path, split: str, spec: StreamSpec, batch_size: int, *,
                views: tuple[int, int] = (1, 1), rank: int = 0, world_size: int = 1,
                workers: int = 0, skip_damaged: bool = False, pin_memory: bool = False,
                manifest: Manifest | None = None, labelled: bool = False):  # -> wds.WebLoader
    """Every sample of ``split`` exactly once over all ranks x workers, in a fixed order.

    Video inputs are ``B x V x 3 x T x H x W`` with ``V = clips * crops`` (clip-major); images
    ``B x 3 x H x W``. The last batch of each worker may be smaller. A damaged shard or sample is
    an error naming it; with ``skip_damaged`` it is left out and listed in ``batch["damaged"]``
    (a last ``{"damaged": ...}`` item without inputs carries what came after the last batch).
    ``pin_memory`` and ``manifest`` as in :func:`train_loader`. ``labelled``: every sample must have a
    class (label -1, unlabelled, is refused as for training: the feature cache trains on these samples).
    """
    import webdataset as wds

    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    manifest = manifest or read_manifest(shards_dir)
    urls = _urls(shards_dir, manifest, split)
    decoder = SampleDecoder(spec, manifest.modality, train=False, flip=False, views=views,
                            num_classes=manifest.num_classes, multi_label_classes=_multi_label_classes(manifest),
                            unlabelled_ok=not labelled)
    source = _EvalSource(urls, rank, world_size, skip_damaged)
    pipeline = wds.DataPipeline(
        source,
        _EvalStage(decoder, source),
        wds.batched(batch_size, collation_fn=Collate(spec.mean, spec.std, manifest.modality == "video"),
                    partial=True),
        _EvalReport(source),
    )
    return wds.WebLoader(pipeline, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                         worker_init_fn=ignore_stop_signals if workers else None)


__all__ = ["StreamSpec", "TrainStream", "train_loader", "eval_loader", "steps_per_epoch", "SampleDecoder",
           "StreamHealth", "require_shards", "split_urls",
           "Collate", "frame_fields", "seed_of"]
