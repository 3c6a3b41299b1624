"""``dataset.json``: what a shard folder holds (written last by ``prepare``, read by the loaders)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from adaptcli.data.names import file_name_problem, split_problem
from adaptcli.files import parse_json, read_text_bounded
from adaptcli.errors import AdaptError
from adaptcli.io import write_text

MANIFEST_NAME = "dataset.json"
FORMAT_VERSION = 1


@dataclass
class SplitInfo:
    """One split: its shard files (relative to the folder), sample count and frame-count stats.

    ``shard_samples``: the samples of each shard, in ``shards`` order (None in manifests written
    before it was recorded); the loaders check the counts against it before any work.
    ``bytes``, ``bytes_per_sample``: the shards' size and its mean per sample (None before recorded).
    ``labelled``: every sample has a class (False: SSv2's test split, ids only; None before recorded).
    """

    shards: list[str]
    samples: int
    frames: dict[str, float] | None = None
    shard_samples: list[int] | None = None
    bytes: int | None = None
    bytes_per_sample: int | None = None
    labelled: bool | None = None


@dataclass
class Manifest:
    """The description of a prepared shard folder."""

    dataset: str
    modality: Literal["image", "video"]
    classes: list[str]
    splits: dict[str, SplitInfo]
    hflip: bool = True  # whether training may flip samples horizontally (False: left/right is a label)
    task: Literal["single-label", "multi-label"] = "single-label"  # multi-label: a list of classes per sample
    skipped: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multi_label(self) -> bool:
        return self.task == "multi-label"

    @property
    def variant(self) -> str | None:
        """Which copy of a benchmark's data this is (VTAB-1k: ``tfds``, ``vpetl``; a VTAB folder that records
        none was prepared from the extracted folders: ``folder``); None where nothing says."""
        recorded = self.settings.get("variant") if isinstance(self.settings, dict) else None
        return str(recorded) if recorded else ("folder" if self.dataset == "vtab" else None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["classes"] = {str(i): name for i, name in enumerate(self.classes)}
        return {"version": data.pop("version"), **data}

    def split(self, name: str) -> SplitInfo:
        """The split ``name``, or a one-line error listing the splits there are."""
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise AdaptError(f"split '{name}' is not in this shard folder (it has: {have})")
        return self.splits[name]


def write_manifest(shards_dir: str | Path, manifest: Manifest) -> Path:
    """Write ``dataset.json`` atomically."""
    path = Path(shards_dir) / MANIFEST_NAME
    write_text(path, json.dumps(manifest.to_dict(), indent=1) + "\n")
    return path


# Manifests written before ``hflip`` was recorded: the datasets that were never flipped.
_LEGACY_NO_FLIP = {"ssv2": False}


def _parse_classes(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [str(c) for c in raw]
    if isinstance(raw, dict):
        indices = sorted(int(k) for k in raw)
        if indices != list(range(len(indices))):
            raise ValueError("class indices are not 0..N-1")
        return [str(raw[str(i)]) for i in indices]
    raise ValueError("classes must be a mapping index -> name")


def manifest_from_dict(data: Any) -> Manifest:
    """Build a :class:`Manifest` from parsed JSON (ValueError/KeyError/TypeError when invalid)."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    modality = data["modality"]
    if modality not in ("image", "video"):
        raise ValueError(f"modality {modality!r}")
    task = data.get("task", "single-label")
    if task not in ("single-label", "multi-label"):
        raise ValueError(f"task {task!r}")
    splits = {}
    for name, info in data["splits"].items():
        shards = info["shards"]
        if not isinstance(shards, list) or not all(isinstance(s, str) for s in shards):
            raise ValueError(f"split {name}: shards must be a list of file names")
        problem = split_problem(name) or next((f"shard {s[:60]!r} is {file_name_problem(s)}" for s in shards
                                               if file_name_problem(s)), None)
        if problem:
            raise ValueError(f"split {str(name)[:60]!r}: {problem} (every shard must lie in the data folder)")
        samples = info["samples"]
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
            raise ValueError(f"split {name}: samples must be a whole number >= 0, not {str(samples)[:40]!r}")
        counts = info.get("shard_samples")
        if counts is not None and (not isinstance(counts, list) or len(counts) != len(shards) or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
            raise ValueError(f"split {name}: shard_samples must list one whole number >= 0 per shard")
        labelled = info.get("labelled")
        if labelled is not None and not isinstance(labelled, bool):
            raise ValueError(f"split {name}: labelled must be true or false, not {str(labelled)[:40]!r}")
        splits[name] = SplitInfo(shards=shards, samples=samples, frames=info.get("frames"), shard_samples=counts,
                                 bytes=info.get("bytes"), bytes_per_sample=info.get("bytes_per_sample"),
                                 labelled=labelled)
    return Manifest(
        dataset=str(data["dataset"]),
        modality=modality,
        classes=_parse_classes(data["classes"]),
        splits=splits,
        hflip=bool(data.get("hflip", _LEGACY_NO_FLIP.get(str(data["dataset"]), True))),
        task=task,
        skipped=list(data.get("skipped", [])),
        settings=dict(data.get("settings", {})),
        version=int(data["version"]),
    )


def read_manifest(shards_dir: str | Path) -> Manifest:
    """Read ``<shards_dir>/dataset.json``; a one-line :class:`AdaptError` when missing or invalid."""
    path = Path(shards_dir) / MANIFEST_NAME
    if not path.is_file():
        raise AdaptError(
            f"{path} not found: prepare the data first (adaptcli prepare ... --shards {shards_dir}); "
            "a folder without it is incomplete"
        )
    try:
        manifest = manifest_from_dict(parse_json(read_text_bounded(path)))
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise AdaptError(f"{path} is not a valid adaptcli manifest ({exc}); prepare the data again") from None
    if manifest.version > FORMAT_VERSION:
        raise AdaptError(f"{path} has format version {manifest.version}; this adaptcli reads up to "
                         f"{FORMAT_VERSION}: upgrade adaptcli")
    return manifest


__all__ = ["MANIFEST_NAME", "FORMAT_VERSION", "SplitInfo", "Manifest", "read_manifest",
           "write_manifest", "manifest_from_dict"]
