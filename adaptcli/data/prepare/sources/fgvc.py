"""FGVC as VPT prepared it: ``<dataset>/{train,val,test}.json`` mapping image path -> label."""

from __future__ import annotations

import json
from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Listing, SourceOptions, list_item, parse_int_label,
    read_source_text, select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError

FGVC_DATASETS = ["CUB_200_2011", "nabirds", "OxfordFlower", "Stanford-dogs", "Stanford-cars"]


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
            mapping = json.loads(read_source_text(path, "fgvc"))
        except ValueError as exc:
            raise AdaptError(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(mapping, dict):
            raise AdaptError(f"{path} must map image paths to integer labels")
        items = []
        for rel, label in mapping.items():
            label = parse_int_label(label, f"{path} [{rel}]")
            top = max(top, label)
            item = list_item(split, base, str(rel), label, listing)
            if item:
                items.append(item)
        listing.splits[split] = unique_keys(sorted(items, key=lambda i: i.key))
    listing.classes = [str(i) for i in range(top + 1)]
    return listing


def find(src: Path, opts: SourceOptions) -> Found:
    return Found([(None, list_fgvc(src, opts.fgvc_dataset, opts.splits))])


register(DataSource("fgvc", "FGVC in VPT's json splits (--dataset picks CUB_200_2011, nabirds, ...)", find, order=70))
