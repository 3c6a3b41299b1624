"""One raw sample of a shard -> ``(inputs, label, key)``: its frames, crop, flip and label."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from adaptcli.data.manifest import Manifest
from adaptcli.data.stream.batch_decode import EncodedClip
from adaptcli.data.stream.clip_augment import ClipRandAugment
from adaptcli.data.stream.sampling import clip_indices, stored_stride
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.transforms import eval_boxes, open_image, render, train_box
from adaptcli.errors import AdaptError
from adaptcli.files import parse_json

IMAGE_FIELDS = ("jpg", "jpeg", "png", "webp")


def frame_fields(sample: dict[str, Any]) -> list[bytes]:
    """The ``NNN.jpg`` fields of a video sample, in frame order."""
    names = [k for k in sample if k.endswith(".jpg") and k[:-4].isdigit()]
    return [sample[k] for k in sorted(names, key=lambda k: int(k[:-4]))]


def image_field(sample: dict[str, Any]) -> bytes:
    for name in IMAGE_FIELDS:
        if name in sample:
            return sample[name]
    raise ValueError(f"sample {sample.get('__key__')} has no image field")


def sample_stride(sample: dict[str, Any], spec: StreamSpec) -> float:
    """The spec's stride (frames at the source rate) in the frames this sample stores; samples
    prepared before the stored rate was recorded (``stored_fps``) kept every frame: unchanged."""
    if spec.sampling != "stride" or "json" not in sample:
        return spec.stride
    record = parse_json(sample["json"])
    return stored_stride(spec.stride, record.get("fps"), record.get("stored_fps"))


def label_of(sample: dict[str, Any]) -> int:
    raw = sample.get("cls")
    return -1 if raw is None else int(raw.decode() if isinstance(raw, bytes) else raw)


def label_outside(label: int, sample: dict[str, Any], num_classes: int | None) -> AdaptError:
    """The one-line error for a sample whose label is not a class of the manifest."""
    classes = f"{num_classes} classes of dataset.json (0..{(num_classes or 1) - 1})"
    return AdaptError(f"label {label} of sample {sample.get('__key__')} in {sample.get('__url__')} is outside the "
                      f"{classes}: the manifest and the shards disagree; prepare the data again")


def multi_label_classes(manifest: Manifest) -> int | None:
    """The length of a sample's multi-hot label vector: the class count for multi-label data, else None."""
    return manifest.num_classes if manifest.multi_label else None


def multi_hot_of(sample: dict[str, Any], num_classes: int) -> np.ndarray:
    """A multi-label sample's ``labels`` (JSON list of class indices) as a float32 multi-hot vector."""
    raw = sample.get("labels")
    if raw is None:
        raise ValueError(f"sample {sample.get('__key__')} has no 'labels' field (multi-label shards)")
    indices = parse_json(raw)
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise ValueError(f"sample {sample.get('__key__')}: 'labels' is not a list of class indices")
    outside = [i for i in indices if not 0 <= i < num_classes]
    if outside:
        raise label_outside(outside[0], sample, num_classes)
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
        return self.decode(sample, rng, 1)[0]

    def decode(self, sample: dict[str, Any], rng: random.Random | None, copies: int) -> list[Any]:
        """``copies`` training views of one sample, each ``(inputs, label, key)``: the same frames, each
        with its own box, flip and RandAugment (VideoMAE's repeated augmentation); evaluation: one."""
        s = self.spec
        key = sample["__key__"]
        if self.multi_label_classes is None:
            label: int | np.ndarray = label_of(sample)
            outside = label < self.lowest_label or (self.num_classes is not None and label >= self.num_classes)
        else:
            label = multi_hot_of(sample, self.multi_label_classes)
            outside = False  # multi_hot_of refuses an index outside the classes itself
        if outside:
            raise label_outside(label, sample, self.num_classes)
        video = self.modality == "video"
        raw = frame_fields(sample) if video else [image_field(sample)]
        if not raw:
            raise ValueError(f"sample {key} has no frames")
        stride = sample_stride(sample, s) if video else s.stride
        if not self.train:  # V x T x H x W x 3 uint8 (an image: H x W x 3)
            views = eval_views(raw, s, video, (self.clips, self.crops), stride)
            return [((views if video else views[0][0]), label, key)]
        clips = [clip_indices(s.sampling, len(raw), s.num_frames, True, rng, stride)] if video else [[0]]  # type: ignore[arg-type]
        first = open_image(raw[clips[0][0]])
        width, height = first.size
        assert rng is not None
        return [self._augmented(raw, clips, width, height, rng) + (label, key) for _ in range(copies)]

    def _augmented(self, raw: list[bytes], clips: list[list[int]], width: int, height: int,
                   rng: random.Random) -> tuple[Any]:
        """One training view of the chosen frames: its box, flip and RandAugment."""
        s = self.spec
        boxes = [train_box(s.augment, width, height, s.img_size, s.crop_scale, s.crop_pct, rng)]  # type: ignore[arg-type]
        flip = self.flip and rng.random() < 0.5
        if self.encoded:
            return (EncodedClip([raw[i] for i in clips[0]], boxes[0], flip),)
        views = render_views(raw, clips, boxes, s.img_size, flip)
        if self.rand_augment is not None:
            views[0] = self.rand_augment(views[0], rng)
        if self.modality == "image":
            return (views[0][0],)  # H x W x 3 uint8
        return (views[0],)  # T x H x W x 3 uint8


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


def eval_views(frames: list[Any], spec: StreamSpec, video: bool, views: tuple[int, int] = (1, 1),
               stride: float | None = None) -> np.ndarray:
    """The evaluation transform of one sample: V x T x H x W x 3 uint8, ``views`` = (clips, crops) of a
    video, clip-major (an image: its one frame, one view). The eval stream (:class:`SampleDecoder`) and
    ``adaptcli predict`` on raw files both cut their inputs here. ``stride``: the spec's, converted to
    the stored frame rate (:func:`sample_stride`; default: the spec's as it is)."""
    clips, crops = views if video else (1, 1)
    stride = spec.stride if stride is None else stride
    indices = [clip_indices(spec.sampling, len(frames), spec.num_frames, False, None, stride, c, clips)  # type: ignore[arg-type]
               for c in range(clips)] if video else [[0]]
    first = frames[indices[0][0]]
    height, width = first.shape[:2] if isinstance(first, np.ndarray) else open_image(first).size[::-1]
    boxes = eval_boxes(spec.augment, width, height, crops, spec.crop_pct)  # type: ignore[arg-type]
    return np.stack(render_views(frames, indices, boxes, spec.img_size))


__all__ = ["IMAGE_FIELDS", "SampleDecoder", "eval_views", "sample_stride", "render_views", "frame_fields", "image_field", "label_of", "label_outside",
           "multi_hot_of",
           "multi_label_classes"]
