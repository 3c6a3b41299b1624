"""Image datasets described by list files: VTAB-1k, Food-101, FGVC (VPT's json), image folders."""

from __future__ import annotations

import json
from pathlib import Path

from adaptcli.data.sources.base import (
    Item,
    Listing,
    missing,
    parse_int_label,
    require_dir,
    sanitise_key,
    select_splits,
    unique_keys,
)
from adaptcli.errors import AdaptError

VTAB_TASKS = ["caltech101", "cifar", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397",
              "patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy", "clevr_count",
              "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori", "smallnorb_azi",
              "smallnorb_ele"]
VTAB_SPLITS = ["train800", "val200", "train800val200", "test"]
FGVC_DATASETS = ["CUB_200_2011", "nabirds", "OxfordFlower", "Stanford-dogs", "Stanford-cars"]
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
VIDEO_EXTS = {".webm", ".mp4", ".avi", ".mkv", ".mov"}


def _resolve(base: Path, rel: str) -> Path:
    """A list file's relative path, tried from the task folder and from its ``images/``."""
    path = base / rel
    if not path.exists() and (base / "images" / rel).exists():
        return base / "images" / rel
    return path


def _item(split: str, base: Path, rel: str, label: int, listing: Listing) -> Item | None:
    key = sanitise_key(str(Path(rel).with_suffix("")))
    path = _resolve(base, rel)
    if not path.is_file():
        listing.skipped.append(missing(split, key, path))
        return None
    return Item(key=key, label=label, path=str(path), meta={"file": rel})


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
        path = base / f"{split}.txt"
        items: list[Item] = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            rel, _, label_text = line.strip().rpartition(" ")
            if not rel:
                raise AdaptError(f"{path}:{number}: expected '<image path> <label>', got {line.strip()!r}")
            label = parse_int_label(label_text, f"{path}:{number}")
            top = max(top, label)
            item = _item(split, base, rel.strip(), label, listing)
            if item:
                items.append(item)
        listing.splits[split] = unique_keys(items)
    listing.classes = [str(i) for i in range(top + 1)]
    return listing


def list_food101(src: str | Path, splits: list[str] | None = None) -> Listing:
    """Food-101: ``meta/classes.txt`` and ``meta/{train,test}.txt`` lines ``<class>/<id>``."""
    src = Path(src)
    base = src / "food-101" if (src / "food-101").is_dir() else src
    classes_path = base / "meta" / "classes.txt"
    if not classes_path.is_file():
        raise AdaptError(f"Food-101 meta/classes.txt not found under {base}")
    classes = [line.strip() for line in classes_path.read_text().splitlines() if line.strip()]
    index = {name: i for i, name in enumerate(classes)}
    chosen = select_splits(["train", "test"], splits, "food101")
    listing = Listing("food101", "image", classes, {})
    for split in chosen:
        path = base / "meta" / f"{split}.txt"
        if not path.is_file():
            raise AdaptError(f"Food-101 split file {path} not found")
        items = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            rel = line.strip()
            if not rel:
                continue
            name = rel.split("/")[0]
            if name not in index or "/" not in rel:
                raise AdaptError(f"{path}:{number}: {rel!r} is not '<class>/<id>' with a class of classes.txt")
            item = _item(split, base / "images", rel + ".jpg", index[name], listing)
            if item:
                items.append(item)
        listing.splits[split] = unique_keys(items)
    return listing


def list_fgvc(src: str | Path, name: str | None, splits: list[str] | None = None) -> Listing:
    """FGVC as VPT prepared it: ``<dataset>/{train,val,test}.json`` mapping image path -> label."""
    src = Path(src)
    if name is None:
        if (src / "train.json").is_file():
            base, name = src, src.name
        else:
            found = [d for d in FGVC_DATASETS if (src / d / "train.json").is_file()]
            raise AdaptError(f"fgvc needs --dataset NAME (found: {', '.join(found) or 'none'} under {src})")
    else:
        base = src / name if (src / name).is_dir() else src
    available = [s for s in ("train", "val", "test") if (base / f"{s}.json").is_file()]
    if not available:
        raise AdaptError(f"no train.json / val.json / test.json in {base}")
    chosen = select_splits(available, splits, f"fgvc {name}")
    listing = Listing("fgvc", "image", [], {}, settings={"fgvc_dataset": name})
    top = -1
    for split in chosen:
        path = base / f"{split}.json"
        try:
            mapping = json.loads(path.read_text())
        except ValueError as exc:
            raise AdaptError(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(mapping, dict):
            raise AdaptError(f"{path} must map image paths to integer labels")
        items = []
        for rel, label in mapping.items():
            label = parse_int_label(label, f"{path} [{rel}]")
            top = max(top, label)
            item = _item(split, base, str(rel), label, listing)
            if item:
                items.append(item)
        listing.splits[split] = unique_keys(sorted(items, key=lambda i: i.key))
    listing.classes = [str(i) for i in range(top + 1)]
    return listing


def list_folder(src: str | Path, modality: str, splits: list[str] | None = None) -> Listing:
    """``<root>/<split>/<class>/<file>``; classes are the sorted union of class folder names."""
    src = require_dir(Path(src), "dataset root")
    exts = VIDEO_EXTS if modality == "video" else IMAGE_EXTS
    available = sorted(p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    chosen = select_splits(available, splits, str(src))
    if not chosen:
        raise AdaptError(f"{src} has no split folders (expected <root>/<split>/<class>/<file>)")
    classes = sorted({c.name for s in chosen for c in (src / s).iterdir() if c.is_dir()})
    if not classes:
        raise AdaptError(f"{src} has no class folders (expected <root>/<split>/<class>/<file>)")
    index = {name: i for i, name in enumerate(classes)}
    listing = Listing(f"{modality}folder", modality, classes, {})  # type: ignore[arg-type]
    for split in chosen:
        items = []
        for name in sorted(c.name for c in (src / split).iterdir() if c.is_dir()):
            for path in sorted((src / split / name).rglob("*")):
                if path.is_file() and path.suffix.lower() in exts:
                    rel = path.relative_to(src / split)
                    items.append(Item(key=sanitise_key(str(rel.with_suffix(""))), label=index[name],
                                      path=str(path), meta={"file": str(rel)}))
        listing.splits[split] = unique_keys(items)
    return listing
