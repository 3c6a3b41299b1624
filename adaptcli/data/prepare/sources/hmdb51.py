"""HMDB51: ``<root>/<class>/<clip>.avi`` plus the official ``<class>_test_split<k>.txt`` files.

The classes are the split files' class names in sorted order (the index HMDB51's tools, e.g. mmaction2's
file lists, give); folders of the root are only where clips are looked up, so the split folder unpacked
inside the root is never a class. The split folder is ``--split-dir``, or found by its official name
``testTrainMulti_7030_splits`` inside or beside the root, or (mmaction2's tools/data/hmdb51) the split files
in ``<root>/annotations/`` with the clips in ``<root>/videos/<class>/``.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, hidden, missing,
    read_source_text, require_dir, sanitise_key, select_splits)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

SPLITS = ["train", "test"]
TAGS = {"1": "train", "2": "test"}
SPLIT_FOLDER = "testTrainMulti_7030_splits"


def _split_files(split_dir: Path, split_id: int) -> dict[str, Path]:
    for folder in (split_dir, split_dir / SPLIT_FOLDER):
        found = {p.name[: -len(f"_test_split{split_id}.txt")]: p
                 for p in sorted(folder.glob(f"*_test_split{split_id}.txt")) if not hidden(p.name)}
        if found:
            return found
    raise AdaptError(f"no HMDB51 split files *_test_split{split_id}.txt in {split_dir} "
                     f"(or its {SPLIT_FOLDER}/)")


def split_folder(root: Path, split_dir: str | Path | None) -> Path:
    """``--split-dir``, else the official split folder inside or beside the root."""
    if split_dir is not None:
        return require_dir(Path(split_dir), "HMDB51 split folder")
    for folder in (root / SPLIT_FOLDER, root.parent / SPLIT_FOLDER):
        if folder.is_dir():
            return folder
    if any((root / "annotations").glob("*_test_split*.txt")):  # mmaction2's download_annotations.sh
        return root / "annotations"
    raise AdaptError(f"HMDB51 needs --split-dir DIR (the folder of <class>_test_split<k>.txt files): no "
                     f"{SPLIT_FOLDER}/ in or beside {root}")


def list_hmdb51(src: str | Path, split_dir: str | Path | None, split_id: int = 1,
                splits: list[str] | None = None) -> Listing:
    """Clips of one official split; tag 1 is train, 2 is test, 0 unused."""
    src = require_dir(Path(src), "HMDB51 root")
    if split_id not in (1, 2, 3):
        raise AdaptError(f"--split-id must be 1, 2 or 3, got {split_id}")
    folder = split_folder(src, split_dir)
    videos = src / "videos" if (src / "videos").is_dir() else src  # mmaction2: <root>/videos/<class>/
    files = _split_files(folder, split_id)
    classes = sorted(files)
    chosen = select_splits(SPLITS, splits, "hmdb51")
    listing = Listing("hmdb51", "video", classes, {s: [] for s in chosen},
                      settings={"split_id": split_id})
    tags = {split: tag for tag, split in TAGS.items()}
    listing.origins = {s: f"tag {tags[s]} of {folder}/*_test_split{split_id}.txt" for s in chosen}
    for name, path in files.items():
        label = classes.index(name)
        for number, line in enumerate(read_source_text(path, "hmdb51").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AdaptError(f"{path}:{number}: expected '<clip>.avi <0|1|2>', got {line.strip()!r}")
            split = TAGS.get(parts[1])
            if split not in listing.splits:
                continue
            clip = videos / name / parts[0]
            key = sanitise_key(f"{name}/{Path(parts[0]).stem}")
            if not clip.is_file():
                listing.skipped.append(missing(split, key, clip))
                continue
            listing.splits[split].append(Item(key=key, label=label, path=str(clip),
                                              meta={"class": name, "file": parts[0]}))
    return listing


def find(src: Path, opts: SourceOptions) -> Found:
    return Found([(None, list_hmdb51(src, opts.split_dir, opts.split_id, opts.splits))])


register(DataSource("hmdb51", "HMDB51 clips of one official split (--split-dir, --split-id)", find, order=20))
