"""UCF101 as distributed: ``UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` and the official split lists
``ucfTrainTestlist/classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
(``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``) and ``testlist0N.txt`` (path only), N = 1, 2, 3.

``--split-id`` picks the official split (default 1), ``--split-dir`` the folder of the lists (default:
``ucfTrainTestlist`` inside or beside the root). mmaction2's tools/data/ucf101 leave the same files as
``<root>/annotations/`` and ``<root>/videos/<Class>/``: found too. Classes follow classInd.txt (its 1-based index minus
one); a listed clip that is not there is skipped and listed in ``dataset.json``.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, missing, read_source_text,
    require_dir, sanitise_key, select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

LISTS = {"train": "trainlist0{}.txt", "test": "testlist0{}.txt"}


def split_folder(root: Path, split_dir: Path | None) -> Path:
    """The folder of classInd.txt and the lists."""
    if split_dir is not None:
        return require_dir(split_dir, "UCF101 split folder")
    for folder in (root / "ucfTrainTestlist", root.parent / "ucfTrainTestlist", root / "annotations"):
        if (folder / "classInd.txt").is_file():
            return folder
    raise AdaptError(f"no ucfTrainTestlist/classInd.txt in or beside {root}; pass --split-dir DIR")


def read_classes(path: Path) -> list[str]:
    """classInd.txt: ``<index> <Class>`` lines, indices 1..N in order."""
    classes = []
    for number, line in enumerate(read_source_text(path, "ucf101").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[0] != str(len(classes) + 1):
            raise AdaptError(f"{path}:{number}: expected '{len(classes) + 1} <Class>', got {line.strip()[:80]!r}")
        classes.append(parts[1])
    if len(classes) < 2:
        raise AdaptError(f"{path} lists {len(classes)} class(es); use the release's classInd.txt")
    return classes


def find(src: Path, opts: SourceOptions) -> Found:
    root = require_dir(Path(src), "UCF101 root")
    videos = next((root / name for name in ("UCF-101", "videos") if (root / name).is_dir()), root)
    if opts.split_id not in (1, 2, 3):
        raise AdaptError(f"--split-id must be 1, 2 or 3 for ucf101, got {opts.split_id}")
    lists = split_folder(root, opts.split_dir)
    classes = read_classes(lists / "classInd.txt")
    index = {name: i for i, name in enumerate(classes)}
    chosen = select_splits(list(LISTS), opts.splits, "ucf101")
    listing = Listing("ucf101", "video", classes, {s: [] for s in chosen}, settings={"split_id": opts.split_id})
    for split in chosen:
        path = listing.origins[split] = lists / LISTS[split].format(opts.split_id)
        if not path.is_file():
            raise AdaptError(f"ucf101: {path} not found; pass the release's ucfTrainTestlist as --split-dir")
        for number, line in enumerate(read_source_text(path, "ucf101").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            rel = parts[0].replace("\\", "/")
            name = rel.split("/")[0]
            if name not in index or "/" not in rel or ".." in rel.split("/"):
                raise AdaptError(f"{path}:{number}: {rel[:80]!r} is not '<Class>/<clip>.avi' with a class of classInd.txt")
            key = sanitise_key(str(Path(rel).with_suffix("")))
            clip = videos / rel
            if not clip.is_file():
                listing.skipped.append(missing(split, key, clip))
                continue
            listing.splits[split].append(Item(key=key, label=index[name], path=str(clip), meta={"file": rel}))
        listing.splits[split] = unique_keys(sorted(listing.splits[split], key=lambda i: i.key))
    notes = [f"ucf101: {len(listing.skipped)} listed clips are missing under {videos} and are skipped"] \
        if listing.skipped else []
    return Found([(None, listing)], notes=notes)


register(DataSource("ucf101", "UCF101 clips of one official split (classInd.txt, trainlist0N/testlist0N; --split-id, "
                    "--split-dir)", find, order=21))
