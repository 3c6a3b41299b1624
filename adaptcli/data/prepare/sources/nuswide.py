"""NUS-WIDE as released: image lists, one 0/1 label file per concept and split, the concept list.

    ROOT/ImageList/TrainImagelist.txt, TestImagelist.txt   one image per line, Windows paths
                                                           (``actor\\0001_2124494179.jpg``)
    ROOT/Groundtruth/TrainTestLabels/Labels_<concept>_Train.txt, _Test.txt
                                                           one 0/1 per line, aligned with the list
    ROOT/ConceptsList/Concepts81.txt                       the 81 concepts, in label order
    ROOT/Flickr/<folder>/<image>.jpg                       the pictures (or ``--images DIR``)

Many Flickr originals are gone: a missing image is skipped and listed in ``dataset.json``. Labels
are stored per sample as the list of its concepts' indices (possibly empty); the task is
multi-label.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.names import file_name_problem
from adaptcli.data.prepare.sources.base import (DataSource, Found, Item, Listing, SourceOptions, missing, read_source_text,
    require_dir, sanitise_key, select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

SPLITS = {"train": "Train", "test": "Test"}
CONCEPTS = Path("ConceptsList") / "Concepts81.txt"
LABELS = Path("Groundtruth") / "TrainTestLabels"


def read_lines(path: Path, what: str) -> list[str]:
    """Non-empty stripped lines of a release text file (one-line error when it is missing)."""
    if not path.is_file():
        raise AdaptError(f"nuswide: {what} not found: {path}")
    return [line.strip() for line in read_source_text(path, "nuswide").splitlines() if line.strip()]


def read_concepts(root: Path) -> list[str]:
    """The concept list: at least one concept, no repeats, each a plain name (it becomes part of a label
    file's name, so a separator or ``..`` would read outside the release)."""
    path = root / CONCEPTS
    concepts = read_lines(path, "concept list")
    if not concepts:
        raise AdaptError(f"nuswide: {path} lists no concepts; use the release's Concepts81.txt")
    bad = next((c for c in concepts if file_name_problem(f"Labels_{c}_Train.txt")), None)
    if bad is not None:
        raise AdaptError(f"nuswide: {path} lists the concept {bad[:60]!r}, which is not a plain name; "
                         "use the release's Concepts81.txt")
    repeated = next((c for i, c in enumerate(concepts) if c in concepts[:i]), None)
    if repeated is not None:
        raise AdaptError(f"nuswide: {path} lists the concept {repeated!r} twice; each concept once")
    return concepts


def concept_flags(root: Path, concept: str, split: str, count: int) -> list[bool]:
    """``Labels_<concept>_<Split>.txt`` as booleans, checked to have one line per listed image."""
    path = root / LABELS / f"Labels_{concept}_{SPLITS[split]}.txt"
    lines = read_lines(path, f"labels of concept '{concept}'")
    if len(lines) != count:
        raise AdaptError(f"nuswide: {path} has {len(lines)} lines but the {split} image list has {count}; "
                         "use the label files of the same release")
    bad = next((line for line in lines if line not in ("0", "1")), None)
    if bad is not None:
        raise AdaptError(f"nuswide: {path} holds {bad!r}; expected one 0 or 1 per line")
    return [line == "1" for line in lines]


def find(src: Path, opts: SourceOptions) -> Found:
    root = require_dir(src, "NUS-WIDE root")
    images = require_dir(opts.images or root / "Flickr", "NUS-WIDE image folder (pass --images DIR)")
    concepts = read_concepts(root)
    listing = Listing("nuswide", "image", concepts, {}, task="multi-label",
                      settings={"images": str(images)})
    unlabelled = 0
    for split in select_splits(list(SPLITS), opts.splits, "nuswide"):
        listing.origins[split] = root / "ImageList" / f"{SPLITS[split]}Imagelist.txt"
        names = read_lines(listing.origins[split], f"{split} image list")
        flags = [concept_flags(root, concept, split, len(names)) for concept in concepts]
        items = []
        for row, name in enumerate(names):
            rel = Path(*name.replace("\\", "/").split("/"))
            key = sanitise_key(str(rel.with_suffix("")))
            path = images / rel
            if not path.is_file():
                listing.skipped.append(missing(split, key, path))
                continue
            labels = [c for c in range(len(concepts)) if flags[c][row]]
            unlabelled += not labels
            items.append(Item(key=key, label=labels, path=str(path), meta={"file": name, "labels": labels}))
        listing.splits[split] = unique_keys(sorted(items, key=lambda i: i.key))
    notes = []
    if listing.skipped:
        notes.append(f"nuswide: {len(listing.skipped)} listed images are missing under {images} and are skipped "
                     f"(first: {listing.skipped[0]['path']})")
    if unlabelled:
        notes.append(f"nuswide: {unlabelled} images have none of the {len(concepts)} concepts (kept, all-zero targets)")
    return Found([(None, listing)], notes=notes)


register(DataSource("nuswide", "NUS-WIDE as released: ImageList/, Groundtruth/TrainTestLabels/, "
                    "ConceptsList/Concepts81.txt, images in ROOT/Flickr or --images (multi-label)", find, order=90))
