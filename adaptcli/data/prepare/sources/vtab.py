"""VTAB-1k list files: ``<task>/<split>.txt`` lines ``<image path> <label>``; one shard subfolder
per task."""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, list_item,
    parse_int_label, read_source_text, require_dir, select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

VTAB_TASKS = ["caltech101", "cifar", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397",
              "patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy", "clevr_count",
              "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori", "smallnorb_azi",
              "smallnorb_ele"]
VTAB_SPLITS = ["train800", "val200", "train800val200", "test"]


def vtab_tasks(src: str | Path) -> list[str]:
    """The VTAB-1k task folders present under ``src`` (in the canonical order)."""
    src = Path(src)
    return [t for t in VTAB_TASKS if (src / t / "train800.txt").is_file() or (src / t / "test.txt").is_file()]


def list_vtab(src: str | Path, task: str, splits: list[str] | None = None) -> Listing:
    """One VTAB-1k task: ``<task>/<split>.txt`` lines ``<relative image path> <label>``."""
    base = require_dir(Path(src) / task, f"VTAB task '{task}'")
    available = [s for s in VTAB_SPLITS if (base / f"{s}.txt").is_file()]
    chosen = select_splits(available, splits, f"VTAB task {task}")
    if not chosen:
        raise AdaptError(f"VTAB task {base} has none of {', '.join(s + '.txt' for s in VTAB_SPLITS)}")
    listing = Listing("vtab", "image", [], {}, settings={"task": task})
    top = -1
    for split in chosen:
        path = listing.origins[split] = base / f"{split}.txt"
        items: list[Item] = []
        for number, line in enumerate(read_source_text(path, "vtab").splitlines(), 1):
            if not line.strip():
                continue
            rel, _, label_text = line.strip().rpartition(" ")
            if not rel:
                raise AdaptError(f"{path}:{number}: expected '<image path> <label>', got {line.strip()!r}")
            label = parse_int_label(label_text, f"{path}:{number}")
            top = max(top, label)
            item = list_item(split, base, rel.strip(), label, listing)
            if item:
                items.append(item)
        listing.splits[split] = unique_keys(items)
    listing.classes = [str(i) for i in range(top + 1)]
    return listing


def find(src: Path, opts: SourceOptions) -> Found:
    """The ``--task`` or every task found (one listing each); notes the tasks that are absent."""
    tasks = [opts.task] if opts.task else vtab_tasks(src)
    if not tasks:
        raise AdaptError(f"no VTAB-1k task folders under {src} (expected e.g. {src}/cifar/train800.txt)")
    found = Found([(task, list_vtab(src, task, opts.splits)) for task in tasks])
    absent = [t for t in VTAB_TASKS if t not in tasks]
    if not opts.task and absent:
        found.notes.append(f"note: {len(absent)} of the {len(VTAB_TASKS)} VTAB tasks are not under {src}: "
                           f"{', '.join(absent)}")
    return found


register(DataSource("vtab", "VTAB-1k, every task found (or --task), one shard subfolder each", find, order=30))
