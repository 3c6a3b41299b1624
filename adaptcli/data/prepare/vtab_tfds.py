"""VTAB-1k from the TFDS records the papers trained on (task_adaptation, VPT, ...), without TensorFlow.

A TFDS data folder holds ``<builder>[/<config>]/<version>/`` with ``dataset_info.json`` (the splits and
each shard's record count) and ``<name>-<split>.tfrecord-NNNNN-of-MMMMM``. Each VTAB task takes its
train800 / val200 / train800val200 / test as the slices google-research/task_adaptation defines
(task_adaptation/data/<task>.py, the same in KMnP/vpt src/data/vtab_datasets), and its label as they
compute it (CLEVR counts and distances, KITTI's closest vehicle, dSprites binned to 16 classes).
Samples are keyed ``images/<split>/<index>`` as in the extracted folders everyone shares.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adaptcli.data.prepare.sources.base import Embedded, Item, Listing, missing, read_source_text, select_splits
from adaptcli.data.prepare.tfrecord import Feature, parse_example, read_records
from adaptcli.errors import AdaptError

VTAB_SPLITS = ["train800", "val200", "train800val200", "test"]


@dataclass(frozen=True)
class Slice:
    """Records ``start`` to ``stop`` (None: the end) of a TFDS split, as in ``train[start:stop]``."""

    split: str
    start: int = 0
    stop: int | None = None

    def __str__(self) -> str:
        """TFDS's notation: ``train[:800]``, ``train[900:1100]``, ``test``."""
        if not self.start and self.stop is None:
            return self.split
        return f"{self.split}[{self.start or ''}:{'' if self.stop is None else self.stop}]"


Slices = dict[str, list[Slice]]


def _train_and_validation(counts: dict[str, int]) -> Slices:
    """``train[:800]``, ``validation[:200]``, test ``test`` (dtd, flowers, sun397, pcam, retinopathy,
    dmlab, kitti)."""
    train, val = Slice("train", 0, 800), Slice("validation", 0, 200)
    return {"train800": [train], "val200": [val], "train800val200": [train, val], "test": [Slice("test")]}


def _cut_train(percent: int, test: str = "test") -> Callable[[dict[str, int]], Slices]:
    """val200 from the first record after ``percent``% of train (caltech101 90, cifar 90, pets 80,
    svhn 90, clevr 90 with TFDS ``validation`` as test)."""
    def slices(counts: dict[str, int]) -> Slices:
        cut = percent * counts["train"] // 100
        train, val = Slice("train", 0, 800), Slice("train", cut, cut + 200)
        return {"train800": [train], "val200": [val], "train800val200": [train, val], "test": [Slice(test)]}
    return slices


def _three_way(train_percent: int, val_percent: int) -> Callable[[dict[str, int]], Slices]:
    """One TFDS split cut into train / val / test by percent (eurosat, resisc45 60/20; dsprites 80/10)."""
    def slices(counts: dict[str, int]) -> Slices:
        train_count = counts["train"] * train_percent // 100
        val_count = counts["train"] * val_percent // 100
        train, val = Slice("train", 0, 800), Slice("train", train_count, train_count + 200)
        return {"train800": [train], "val200": [val], "train800val200": [train, val],
                "test": [Slice("train", train_count + val_count)]}
    return slices


def _smallnorb(counts: dict[str, int]) -> Slices:
    """val200 from TFDS test's start, test its second half (``test[50%:]``)."""
    train, val = Slice("train", 0, 800), Slice("test", 0, 200)
    return {"train800": [train], "val200": [val], "train800val200": [train, val],
            "test": [Slice("test", 50 * counts["test"] // 100)]}


def _first_int(name: str) -> Callable[[dict[str, Feature]], int]:
    def label(features: dict[str, Feature]) -> int:
        return features[name].ints[0]
    return label


def _binned(name: str, factor: float) -> Callable[[dict[str, Feature]], int]:
    """dSprites: ``floor(value / factor)`` (32 x positions and 40 orientations into 16 classes)."""
    def label(features: dict[str, Feature]) -> int:
        return int(math.floor(features[name].ints[0] / factor))
    return label


def _bin_index(value: float, thresholds: list[float]) -> int:
    """The last threshold below ``value`` (task_adaptation's ``reduce_max(where(thrs - v < 0))``)."""
    return max(i for i, t in enumerate(thresholds) if t < value)


def _clevr_count(features: dict[str, Feature]) -> int:
    return len(features["objects/size"].ints) - 3


def _clevr_distance(features: dict[str, Feature]) -> int:
    depth = min(features["objects/pixel_coords"].floats[2::3])
    return _bin_index(depth, [0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0])


def _kitti_distance(features: dict[str, Feature]) -> int:
    """Distance to the closest car, van or truck (types 0-2), a fourth class for none."""
    depths = features["objects/location"].floats[2::3]
    vehicles = [z for z, kind in zip(depths, features["objects/type"].ints) if kind < 3]
    return _bin_index(min(vehicles + [1000.0]), [-100.0, 8.0, 20.0, 999.0])


@dataclass(frozen=True)
class TfdsTask:
    """Where a VTAB task's records lie and how its splits and labels are made."""

    builder: str  # TFDS name[/config]
    version: str  # "3." any 3.x.y (task_adaptation's "3.*.*"), or an exact "2.0.1"
    slices: Callable[[dict[str, int]], Slices]
    label: Callable[[dict[str, Feature]], int]
    scale: int = 1  # dsprites stores 0/1 pixels; task_adaptation multiplies them by 255


TFDS_TASKS: dict[str, TfdsTask] = {
    "caltech101": TfdsTask("caltech101", "3.", _cut_train(90), _first_int("label")),
    "cifar": TfdsTask("cifar100", "3.", _cut_train(90), _first_int("label")),
    "dtd": TfdsTask("dtd", "3.", _train_and_validation, _first_int("label")),
    "oxford_flowers102": TfdsTask("oxford_flowers102", "2.", _train_and_validation, _first_int("label")),
    "oxford_iiit_pet": TfdsTask("oxford_iiit_pet", "3.", _cut_train(80), _first_int("label")),
    "svhn": TfdsTask("svhn_cropped", "3.", _cut_train(90), _first_int("label")),
    "sun397": TfdsTask("sun397/tfds", "4.", _train_and_validation, _first_int("label")),
    "patch_camelyon": TfdsTask("patch_camelyon", "2.", _train_and_validation, _first_int("label")),
    "eurosat": TfdsTask("eurosat/rgb", "2.", _three_way(60, 20), _first_int("label")),
    "resisc45": TfdsTask("resisc45", "3.", _three_way(60, 20), _first_int("label")),
    "diabetic_retinopathy": TfdsTask("diabetic_retinopathy_detection/btgraham-300", "3.", _train_and_validation,
                                     _first_int("label")),
    "clevr_count": TfdsTask("clevr", "3.", _cut_train(90, test="validation"), _clevr_count),
    "clevr_dist": TfdsTask("clevr", "3.", _cut_train(90, test="validation"), _clevr_distance),
    "dmlab": TfdsTask("dmlab", "2.0.1", _train_and_validation, _first_int("label")),
    "kitti": TfdsTask("kitti", "3.2.0", _train_and_validation, _kitti_distance),
    "dsprites_loc": TfdsTask("dsprites", "2.", _three_way(80, 10), _binned("label_x_position", 32 / 16), scale=255),
    "dsprites_ori": TfdsTask("dsprites", "2.", _three_way(80, 10), _binned("label_orientation", 40 / 16), scale=255),
    "smallnorb_azi": TfdsTask("smallnorb", "2.", _smallnorb, _first_int("label_azimuth")),
    "smallnorb_ele": TfdsTask("smallnorb", "2.", _smallnorb, _first_int("label_elevation")),
}


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".")) if all(p.isdigit() for p in name.split(".")) else ()


def version_dir(root: Path, task: str) -> Path | None:
    """The task's TFDS version folder under ``root`` (the highest version that fits), or None."""
    spec = TFDS_TASKS[task]
    builder = root / spec.builder
    if not builder.is_dir():
        return None
    fits = [d for d in builder.iterdir() if _version_key(d.name) and (d / "dataset_info.json").is_file()
            and (d.name == spec.version if spec.version.count(".") == 2 else d.name.startswith(spec.version))]
    return max(fits, key=lambda d: _version_key(d.name)) if fits else None


def tfds_tasks(root: Path) -> list[str]:
    """The VTAB tasks whose TFDS records lie under ``root`` (a TFDS data folder)."""
    return [task for task in TFDS_TASKS if version_dir(root, task) is not None]


def _shards(folder: Path, name: str) -> dict[str, list[tuple[Path, int]]]:
    """Each split's shard files (``<name>-<split>.tfrecord-...``, ``name`` the TFDS dataset's) with their
    record counts, from ``dataset_info.json``; only splits named in letters, digits and ``_`` (the file
    names are made from them)."""
    info_path = folder / "dataset_info.json"
    try:
        info = json.loads(read_source_text(info_path, "vtab"))
        if info.get("fileFormat", "tfrecord") != "tfrecord":
            raise AdaptError(f"{info_path}: the records are {str(info['fileFormat'])[:40]}, not tfrecord; prepare "
                             "the dataset with a tensorflow_datasets version that writes tfrecord files")
        splits: dict[str, list[tuple[Path, int]]] = {}
        for split in info["splits"]:
            if not re.fullmatch(r"\w+", str(split["name"]), re.ASCII):
                continue
            lengths = [int(n) for n in split.get("shardLengths") or []]
            if not lengths and int(split.get("numShards", 1)) == 1 and "statistics" in split:
                lengths = [int(split["statistics"]["numExamples"])]  # written before shardLengths were
            if not lengths:
                raise ValueError(f"split {split.get('name')!r} lists no shardLengths")
            total = len(lengths)
            splits[str(split["name"])] = [(folder / f"{name}-{split['name']}.tfrecord-{i:05d}-of-{total:05d}", n)
                                          for i, n in enumerate(lengths)]
    except (ValueError, KeyError, TypeError) as exc:
        raise AdaptError(f"{info_path} is not a TFDS dataset_info.json ({str(exc)[:120]}); download the dataset "
                         "again with tensorflow_datasets") from None
    return splits


def list_vtab_tfds(root: str | Path, task: str, splits: list[str] | None = None) -> Listing:
    """One VTAB-1k task from its TFDS records: the papers' exact samples, splits and labels."""
    spec, root = TFDS_TASKS[task], Path(root)
    folder = version_dir(root, task)
    if folder is None:
        raise AdaptError(f"no TFDS records of VTAB task '{task}' under {root} (expected "
                         f"{Path(root) / spec.builder}/<version {spec.version}*>/dataset_info.json)")
    shards = _shards(folder, spec.builder.split("/")[0])
    chosen = select_splits(VTAB_SPLITS, splits, f"VTAB task {task}")
    try:
        slices = spec.slices({name: sum(n for _, n in files) for name, files in shards.items()})
    except KeyError as exc:
        raise AdaptError(f"{folder / 'dataset_info.json'} has no split {exc}, which VTAB's {task} uses; download "
                         "the whole dataset with tensorflow_datasets") from None
    listing = Listing("vtab", "image", [], {}, settings={"task": task, "variant": "tfds",
                                                         "tfds": f"{spec.builder}/{folder.name}"})
    wanted = {s.split for split in chosen for s in slices[split]}
    for name in sorted(wanted):
        if name not in shards:
            raise AdaptError(f"{folder / 'dataset_info.json'} has no split '{name}', which VTAB's {task} uses; "
                             "download the whole dataset with tensorflow_datasets")
        for path, _ in shards[name]:
            if not path.is_file():
                raise AdaptError(f"{path} is missing ({folder.name} lists {len(shards[name])} shards for "
                                 f"'{name}'); download the dataset again")
    records = {name: _read_split(shards[name], task, spec, _ranges(slices, chosen, name, shards[name]))
               for name in sorted(wanted)}
    top = -1
    for split in chosen:
        listing.origins[split] = f"{folder.relative_to(root)} " + "+".join(map(str, slices[split]))
        items: list[Item] = []
        position = 0  # in the VTAB split: a damaged record keeps its place, so later keys do not move
        for part in slices[split]:
            total = sum(n for _, n in shards[part.split])
            for index in range(part.start, total if part.stop is None else min(part.stop, total)):
                record = records[part.split][index]
                key = f"images/{split}/{position:06d}"
                position += 1
                if isinstance(record, str):
                    listing.skipped.append(missing(split, key, folder, record))
                    continue
                path, offset, length, label = record
                items.append(Item(key=key, label=label, path=path, embedded=Embedded(offset, length, spec.scale),
                                  meta={"file": Path(path).name, "record": index}))
                top = max(top, label)
        listing.splits[split] = items
    listing.classes = [str(i) for i in range(top + 1)]
    return listing


def _ranges(slices: Slices, chosen: list[str], name: str, files: list[tuple[Path, int]]) -> list[range]:
    """The records of split ``name`` the chosen VTAB splits read (the others are stepped over)."""
    total = sum(n for _, n in files)
    return [range(s.start, total if s.stop is None else min(s.stop, total)) for split in chosen
            for s in slices[split] if s.split == name]


Entry = tuple[str, int, int, int] | str  # (file, image offset, image length, label) or why it is damaged


def _read_split(files: list[tuple[Path, int]], task: str, spec: TfdsTask, ranges: list[range]) -> dict[int, Entry]:
    """The records of a split that ``ranges`` name, by index over its shards in order."""
    entries: dict[int, Entry] = {}
    needed = max((r.stop for r in ranges), default=0)
    base = 0
    for path, count in files:
        if base >= needed:
            break
        offset = base  # bound now: the closure below runs while this shard is read
        seen, problem = 0, "file ends early"
        try:
            for record in read_records(path, lambda i: any(offset + i in r for r in ranges)):
                if offset + record.index >= needed or record.index >= count:
                    break
                seen = record.index + 1
                where = f"{path.name} record {record.index}"
                if record.data is None:
                    problem = f"{where}: {record.problem}"
                    entries[offset + record.index] = problem
                else:
                    entries[offset + record.index] = _entry(path, record.offset, record.data, task, spec, where)
        except OSError as exc:
            raise AdaptError(f"{path} cannot be read ({exc.strerror or exc}); check the file") from None
        for index in range(seen, min(count, needed - offset)):  # records the damaged end hid
            if any(offset + index in r for r in ranges):
                entries[offset + index] = f"{path.name} record {index} unreadable ({problem})"
        base += count
    return entries


def _entry(path: Path, offset: int, data: bytes, task: str, spec: TfdsTask, where: str) -> Entry:
    try:
        features = parse_example(data)
        images = features["image"].spans
        if len(images) != 1:
            raise ValueError(f"{len(images)} images")
        label = spec.label(features)
        if label < 0:
            raise ValueError(f"label {label}")
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
        return f"{where}: not a VTAB {task} example ({type(exc).__name__}: {str(exc)[:80]})"
    start, end = images[0]
    return (str(path), offset + start, end - start, label)


__all__ = ["TFDS_TASKS", "TfdsTask", "list_vtab_tfds", "tfds_tasks", "version_dir"]
