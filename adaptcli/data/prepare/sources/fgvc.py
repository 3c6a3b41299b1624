"""FGVC as VPT prepared it: ``<dataset>/{train,val,test}.json`` mapping image path -> label.

Labels are mapped to 0..K-1 in sorted label order over every json file found (VPT's loader maps them the
same way), so labels from 1 or with gaps leave no empty class. Class names come from the
dataset's ``classes.txt`` (``<label> <name>``, as CUB-200-2011 and NABirds ship it) where it names every
label, else they are the label values.
"""

from __future__ import annotations

import json
from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Listing, SourceOptions, list_item, parse_int_label,
    read_source_text, select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

FGVC_DATASETS = ["CUB_200_2011", "nabirds", "OxfordFlower", "Stanford-dogs", "Stanford-cars"]


def list_fgvc(src: str | Path, name: str | None, splits: list[str] | None = None) -> Found:
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
    labels = {split: _read_labels(base / f"{split}.json") for split in available}
    values = sorted({label for mapping in labels.values() for label in mapping.values()})
    index = {value: i for i, value in enumerate(values)}
    names, notes = _class_names(base, values)
    listing = Listing("fgvc", "image", names, {}, settings={"fgvc_dataset": name})
    for split in chosen:
        listing.origins[split] = base / f"{split}.json"
        items = []
        for rel, label in labels[split].items():
            # Stanford Dogs' paths lie under Images/ (VPT's and V-PETL Bench's loaders read them there)
            images = base / "Images" if not (base / rel).exists() and (base / "Images" / rel).is_file() else base
            item = list_item(split, images, rel, index[label], listing)
            if item:
                items.append(item)
        listing.splits[split] = unique_keys(sorted(items, key=lambda i: i.key))
    return Found([(None, listing)], notes=notes)


def _read_labels(path: Path) -> dict[str, int]:
    """One split's json: image path -> integer label."""
    try:
        mapping = json.loads(read_source_text(path, "fgvc"))
    except ValueError as exc:
        raise AdaptError(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(mapping, dict):
        raise AdaptError(f"{path} must map image paths to integer labels")
    return {str(rel): parse_int_label(label, f"{path} [{rel}]") for rel, label in mapping.items()}


def _class_names(base: Path, values: list[int]) -> tuple[list[str], list[str]]:
    """The names ``classes.txt`` gives the label values, or the values themselves where it is absent
    or does not name every label (then with a note saying so)."""
    path = base / "classes.txt"
    if not path.is_file():
        return [str(v) for v in values], []
    names: dict[int, str] = {}
    for number, line in enumerate(read_source_text(path, "fgvc").splitlines(), 1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise AdaptError(f"{path}:{number}: expected '<label> <class name>', got {line.strip()[:80]!r}")
        names[int(parts[0])] = parts[1].strip()
    unnamed = [v for v in values if v not in names]
    if unnamed:
        return [str(v) for v in values], [f"fgvc: {path} does not name the labels {', '.join(map(str, unnamed[:10]))}"
                                          f"{' ...' if len(unnamed) > 10 else ''}; the classes are named by their labels"]
    return [names[v] for v in values], []


def find(src: Path, opts: SourceOptions) -> Found:
    return list_fgvc(src, opts.fgvc_dataset, opts.splits)


register(DataSource("fgvc", "FGVC in VPT's json splits (--dataset picks CUB_200_2011, nabirds, ...)", find, order=70))
