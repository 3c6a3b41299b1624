"""Training and evaluation streams from a prepared shard folder, for images and videos alike.

Train: ``resampled`` shards, drawn independently by every (rank, worker) from seeds derived
from ``(seed, epoch, rank, worker)``, a shuffle buffer of raw samples, decode + augment, fixed-size
batches; ``WebLoader(...).with_epoch(steps)`` cuts the infinite stream so every rank runs the same
number of steps. Never pass these loaders to ``accelerator.prepare`` (that would split again).

Eval: every sample exactly once over all ranks x workers. With at least ``world_size * workers``
shards, shards are dealt round-robin to the (rank, worker) slots; with fewer, every slot reads
every shard and keeps the samples whose index in the split is its slot modulo the slot count.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset

from adaptcli.data.config import DataConfig
from adaptcli.data.manifest import Manifest, read_manifest
from adaptcli.data.sampling import clip_indices
from adaptcli.data.tar_reader import BadShard, iter_samples
from adaptcli.data.transforms import eval_boxes, normalise, open_image, render, train_box

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

    @classmethod
    def from_config(cls, data: DataConfig, img_size: int, num_frames: int, mean: Iterable[float],
                    std: Iterable[float]) -> "StreamSpec":
        """Take the sampling and augmentation settings from a :class:`DataConfig`."""
        return cls(img_size=img_size, num_frames=num_frames, mean=tuple(mean), std=tuple(std),  # type: ignore[arg-type]
                   sampling=data.sampling, stride=data.stride, augment=data.augment,
                   crop_scale=(float(data.crop_scale[0]), float(data.crop_scale[1])), flip=data.flip,
                   crop_pct=data.crop_pct, shuffle_buffer=data.shuffle_buffer)


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
    target = np.zeros(num_classes, dtype=np.float32)
    target[json.loads(raw.decode() if isinstance(raw, bytes) else raw)] = 1.0
    return target


class SampleDecoder:
    """Raw sample -> ``(inputs, label, key)`` with the spec's sampling and spatial transform."""

    def __init__(self, spec: StreamSpec, modality: str, train: bool, flip: bool,
                 views: tuple[int, int] = (1, 1), multi_label_classes: int | None = None) -> None:
        self.spec, self.modality, self.train, self.flip = spec, modality, train, flip
        self.multi_label_classes = multi_label_classes  # set: labels are multi-hot vectors
        self.clips, self.crops = views if modality == "video" else (1, 1)

    def _frames(self, sample: dict[str, Any], rng: random.Random | None) -> list[list[int]]:
        frames = frame_fields(sample)
        n, s = len(frames), self.spec
        if n == 0:
            raise ValueError(f"sample {sample.get('__key__')} has no frames")
        if self.train:
            return [clip_indices(s.sampling, n, s.num_frames, True, rng, s.stride)]  # type: ignore[arg-type]
        return [clip_indices(s.sampling, n, s.num_frames, False, None, s.stride, c, self.clips)  # type: ignore[arg-type]
                for c in range(self.clips)]

    def __call__(self, sample: dict[str, Any], rng: random.Random | None = None):
        s = self.spec
        key = sample["__key__"]
        if self.multi_label_classes is None:
            label: int | np.ndarray = label_of(sample)
        else:
            label = multi_hot_of(sample, self.multi_label_classes)
        if self.modality == "video":
            raw = frame_fields(sample)
            clips = self._frames(sample, rng)
        else:
            raw, clips = [image_field(sample)], [[0]]
        first = open_image(raw[clips[0][0]])
        width, height = first.size
        if self.train:
            assert rng is not None
            boxes = [train_box(s.augment, width, height, s.img_size, s.crop_scale, s.crop_pct, rng)]  # type: ignore[arg-type]
            flip = self.flip and rng.random() < 0.5
        else:
            boxes = eval_boxes(s.augment, width, height, self.crops, s.crop_pct)  # type: ignore[arg-type]
            flip = False
        views = []
        cache: dict[tuple[int, int], np.ndarray] = {}  # (frame, box) -> rendered frame
        for indices in clips:
            for b, box in enumerate(boxes):
                for i in indices:
                    if (i, b) not in cache:
                        cache[(i, b)] = render(open_image(raw[i]), box, s.img_size, flip)
                views.append(np.stack([cache[(i, b)] for i in indices]))
        if self.modality == "image":
            return views[0][0], label, key  # H x W x 3 uint8
        if self.train:
            return views[0], label, key  # T x H x W x 3 uint8
        return np.stack(views), label, key  # V x T x H x W x 3 uint8


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


class _TrainStage:
    """Shuffle raw samples and decode them, with an RNG seeded by (seed, epoch, rank, worker)."""

    def __init__(self, decoder: SampleDecoder, seed: int, epoch: int, rank: int, buffer: int) -> None:
        self.decoder, self.seed, self.epoch, self.rank, self.buffer = decoder, seed, epoch, rank, buffer

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[Any]:
        import webdataset as wds

        rng = random.Random(seed_of(self.seed, self.epoch, self.rank, _worker()[0], 1))
        if self.buffer > 1:
            src = wds.shuffle(bufsize=self.buffer, initial=max(1, self.buffer // 2), rng=rng)(src)
        for sample in src:
            try:
                yield self.decoder(sample, rng)
            except Exception as exc:  # a damaged sample must not stop training
                import warnings

                warnings.warn(f"skipping sample {sample.get('__key__')}: {exc}")


def _read_shards(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``{"url": ...}`` -> the samples of that shard; a damaged shard is reported and skipped."""
    import warnings

    for shard in src:
        try:
            yield from iter_samples(shard["url"])
        except (OSError, BadShard, UnicodeDecodeError) as exc:
            warnings.warn(f"skipping the rest of shard {shard['url']}: {exc}")


class _EvalSource(IterableDataset):
    """Samples of this (rank, worker) slot: round-robin shards, or every N-th sample when few shards."""

    def __init__(self, urls: list[str], rank: int, world_size: int) -> None:
        super().__init__()
        self.urls, self.rank, self.world_size = urls, rank, world_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = _worker()
        slots, slot = self.world_size * workers, self.rank * workers + worker
        if len(self.urls) >= slots:
            for url in self.urls[slot::slots]:
                yield from iter_samples(url)
            return
        index = 0
        for url in self.urls:
            for sample in iter_samples(url):
                if index % slots == slot:
                    yield sample
                index += 1


class _EvalStage:
    def __init__(self, decoder: SampleDecoder) -> None:
        self.decoder = decoder

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[Any]:
        for sample in src:
            yield self.decoder(sample)


# --------------------------------------------------------------------------- loaders


def _urls(shards_dir: str | Path, manifest: Manifest, split: str) -> list[str]:
    info = manifest.split(split)
    if not info.shards:
        from adaptcli.errors import AdaptError

        raise AdaptError(f"split '{split}' of {shards_dir} has no samples")
    return [str(Path(shards_dir) / name) for name in info.shards]


class TrainStream:
    """``steps`` batches of exactly ``batch_size`` per iteration; iteration k uses epoch ``epoch + k``.

    Building it again with the same arguments yields identical batches.
    """

    def __init__(self, urls: list[str], decoder: SampleDecoder, batch_size: int, steps: int, *,
                 rank: int, workers: int, seed: int, epoch: int, buffer: int) -> None:
        self.urls, self.decoder, self.batch_size, self.steps = urls, decoder, batch_size, steps
        self.rank, self.workers, self.seed, self.epoch, self.buffer = rank, workers, seed, epoch, buffer
        self.collate = Collate(decoder.spec.mean, decoder.spec.std, decoder.modality == "video")

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def loader(self, epoch: int):  # -> wds.WebLoader
        """The WebLoader of one epoch."""
        import webdataset as wds

        pipeline = wds.DataPipeline(
            wds.ResampledShards(self.urls, seed=seed_of(self.seed, epoch) % (1 << 31),
                                worker_seed=_WorkerSeed(self.rank), deterministic=True),
            _read_shards,
            _TrainStage(self.decoder, self.seed, epoch, self.rank, self.buffer),
            wds.batched(self.batch_size, collation_fn=self.collate, partial=False),
        )
        loader = wds.WebLoader(pipeline, batch_size=None, shuffle=False, num_workers=self.workers,
                               persistent_workers=False)
        return loader.with_epoch(self.steps)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        self.epoch += 1
        yield from self.loader(epoch)


def _multi_label_classes(manifest: Manifest) -> int | None:
    return manifest.num_classes if manifest.multi_label else None


def steps_per_epoch(samples: int, batch_size: int, world_size: int, max_steps: int | None = None) -> int:
    """``max(1, samples // (batch_size * world_size))``, capped at ``max_steps`` when given."""
    steps = max(1, samples // (batch_size * world_size))
    return steps if max_steps is None else min(steps, max_steps)


def train_loader(shards_dir: str | Path, split: str, spec: StreamSpec, batch_size: int, *, rank: int = 0,
                 world_size: int = 1, workers: int = 0, seed: int = 0, epoch: int = 0,
                 max_steps: int | None = None) -> tuple[TrainStream, int]:
    """The shuffled, resampled, augmented training stream and its steps per epoch.

    With at least ``world_size`` shards, rank r draws only from shards r, r + world_size, ...
    (disjoint data per rank); with fewer, every rank draws from all of them.

    Every rank yields exactly :func:`steps_per_epoch` batches of exactly ``batch_size``. Horizontal
    flip needs both ``spec.flip`` and the manifest's ``hflip`` (False where left/right is a label).
    """
    manifest = read_manifest(shards_dir)
    urls = _urls(shards_dir, manifest, split)
    if len(urls) >= world_size:  # split by node: each rank resamples only its own shards
        urls = urls[rank::world_size]
    steps = steps_per_epoch(manifest.split(split).samples, batch_size, world_size, max_steps)
    decoder = SampleDecoder(spec, manifest.modality, train=True, flip=spec.flip and manifest.hflip,
                            multi_label_classes=_multi_label_classes(manifest))
    stream = TrainStream(urls, decoder, batch_size, steps, rank=rank, workers=workers, seed=seed,
                         epoch=epoch, buffer=spec.shuffle_buffer)
    return stream, steps


def eval_loader(shards_dir: str | Path, split: str, spec: StreamSpec, batch_size: int, *,
                views: tuple[int, int] = (1, 1), rank: int = 0, world_size: int = 1,
                workers: int = 0):  # -> wds.WebLoader
    """Every sample of ``split`` exactly once over all ranks x workers, in a fixed order.

    Video inputs are ``B x V x 3 x T x H x W`` with ``V = clips * crops`` (clip-major); images
    ``B x 3 x H x W``. The last batch of each worker may be smaller.
    """
    import webdataset as wds

    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    manifest = read_manifest(shards_dir)
    urls = _urls(shards_dir, manifest, split)
    decoder = SampleDecoder(spec, manifest.modality, train=False, flip=False, views=views,
                            multi_label_classes=_multi_label_classes(manifest))
    pipeline = wds.DataPipeline(
        _EvalSource(urls, rank, world_size),
        _EvalStage(decoder),
        wds.batched(batch_size, collation_fn=Collate(spec.mean, spec.std, manifest.modality == "video"),
                    partial=True),
    )
    return wds.WebLoader(pipeline, batch_size=None, shuffle=False, num_workers=workers)


__all__ = ["StreamSpec", "TrainStream", "train_loader", "eval_loader", "steps_per_epoch", "SampleDecoder",
           "Collate", "frame_fields", "seed_of"]
