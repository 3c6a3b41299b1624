"""Dataset name -> reader, with the options each one takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adaptcli.data.sources.base import Listing
from adaptcli.errors import AdaptError

DATASETS = ("ssv2", "hmdb51", "vtab", "cifar100", "svhn", "food101", "fgvc", "imagefolder", "videofolder")


@dataclass
class SourceOptions:
    """Dataset-specific options from the command line."""

    splits: list[str] | None = None
    labels: Path | None = None
    videos: Path | None = None
    split_dir: Path | None = None
    split_id: int = 1
    task: str | None = None
    fgvc_dataset: str | None = None


def list_dataset(name: str, src: Path, opts: SourceOptions) -> list[tuple[str | None, Listing]]:
    """Read ``src`` as dataset ``name``; VTAB gives one listing per task (with its subfolder name)."""
    from adaptcli.data.sources import arrays, hmdb51, lists, ssv2

    if not src.exists():
        raise AdaptError(f"dataset folder {src} does not exist")
    if name == "ssv2":
        return [(None, ssv2.list_ssv2(src, opts.splits, opts.labels, opts.videos))]
    if name == "hmdb51":
        return [(None, hmdb51.list_hmdb51(src, opts.split_dir, opts.split_id, opts.splits))]
    if name == "vtab":
        tasks = [opts.task] if opts.task else lists.vtab_tasks(src)
        if not tasks:
            raise AdaptError(f"no VTAB-1k task folders under {src} (expected e.g. {src}/cifar/train800.txt)")
        return [(task, lists.list_vtab(src, task, opts.splits)) for task in tasks]
    if name == "cifar100":
        return [(None, arrays.list_cifar100(src, opts.splits))]
    if name == "svhn":
        return [(None, arrays.list_svhn(src, opts.splits))]
    if name == "food101":
        return [(None, lists.list_food101(src, opts.splits))]
    if name == "fgvc":
        return [(None, lists.list_fgvc(src, opts.fgvc_dataset, opts.splits))]
    if name in ("imagefolder", "videofolder"):
        return [(None, lists.list_folder(src, name[: -len("folder")], opts.splits))]
    raise AdaptError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")
