"""VTAB-1k, one shard subfolder per task, in three variants (recorded as ``settings.variant`` in
dataset.json; absent means ``folder``):

- folder: the extracted folders everyone shares, ``<task>/<split>.txt`` lines ``<image path> <label>``;
- vpetl: the same files as V-PETL Bench publishes them on the Hugging Face Hub (unzipped), whose
  folder for ``cifar`` is ``cifar100`` (its loader's dataset names);
- tfds: the TFDS records the papers trained on (:mod:`adaptcli.data.prepare.vtab_tfds`).
"""

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
#: V-PETL Bench's folder names where they differ from VTAB's task names.
VPETL_FOLDERS = {"cifar": "cifar100"}


def _has_lists(folder: Path) -> bool:
    return (folder / "train800.txt").is_file() or (folder / "test.txt").is_file()


def _task_folder(src: Path, task: str) -> Path:
    """``src/<task>``, or V-PETL's name for it where only that one has the list files."""
    vpetl = src / VPETL_FOLDERS.get(task, task)
    return vpetl if not _has_lists(src / task) and _has_lists(vpetl) else src / task


def vtab_tasks(src: str | Path) -> list[str]:
    """The VTAB-1k task folders present under ``src`` (in the canonical order)."""
    src = Path(src)
    return [t for t in VTAB_TASKS if _has_lists(_task_folder(src, t))]


def list_vtab(src: str | Path, task: str, splits: list[str] | None = None, variant: str = "folder") -> Listing:
    """One VTAB-1k task: ``<task>/<split>.txt`` lines ``<relative image path> <label>``."""
    base = require_dir(_task_folder(Path(src), task), f"VTAB task '{task}'")
    available = [s for s in VTAB_SPLITS if (base / f"{s}.txt").is_file()]
    chosen = select_splits(available, splits, f"VTAB task {task}")
    if not chosen:
        raise AdaptError(f"VTAB task {base} has none of {', '.join(s + '.txt' for s in VTAB_SPLITS)}")
    # the folder variant records no "variant": dataset.json files written before variants compare equal
    listing = Listing("vtab", "image", [], {}, settings={"task": task} if variant == "folder" else
                      {"task": task, "variant": variant})
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
    """The ``--task`` or every task found (one listing each), from list files or TFDS records; notes the
    tasks that are absent."""
    from adaptcli.data.prepare.vtab_tfds import list_vtab_tfds, tfds_tasks

    task = {v: k for k, v in VPETL_FOLDERS.items()}.get(opts.task or "", opts.task)  # V-PETL's names too
    in_lists, in_tfds = vtab_tasks(src), tfds_tasks(src)
    if in_lists and in_tfds:
        raise AdaptError(f"{src} holds both VTAB list files ({', '.join(in_lists[:3])}) and TFDS records "
                         f"({', '.join(in_tfds[:3])}); pass the extracted folder or the TFDS data folder")
    if in_tfds and (not task or task in in_tfds):
        tasks = [task] if task else in_tfds
        found = Found([(t, list_vtab_tfds(src, t, opts.splits)) for t in tasks])
    else:
        tasks = [task] if task else in_lists
        if not tasks:
            raise AdaptError(f"no VTAB-1k task folders under {src} (expected e.g. {src}/cifar/train800.txt, or "
                             f"TFDS records as {src}/cifar100/3.0.2/dataset_info.json)")
        variant = "vpetl" if any(_has_lists(src / name) for name in VPETL_FOLDERS.values()) else "folder"
        found = Found([(t, list_vtab(src, t, opts.splits, variant)) for t in tasks])
    absent = [t for t in VTAB_TASKS if t not in tasks]
    if not opts.task and absent:
        found.notes.append(f"note: {len(absent)} of the {len(VTAB_TASKS)} VTAB tasks are not under {src}: "
                           f"{', '.join(absent)}")
    return found


register(DataSource("vtab", "VTAB-1k (extracted folders, V-PETL Bench's files or TFDS records), every task found "
                            "(or --task), one shard subfolder each", find, order=30))
