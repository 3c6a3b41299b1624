"""Food-101: ``meta/classes.txt`` and ``meta/{train,test}.txt`` list files over ``images/``."""

from __future__ import annotations

from pathlib import Path

from adaptcli.data.prepare.sources.base import (DataSource, Found, Listing, SourceOptions, list_item, read_source_text,
    select_splits, unique_keys)
from adaptcli.data.prepare.sources.registry import register
from adaptcli.errors import AdaptError


def list_food101(src: str | Path, splits: list[str] | None = None) -> Listing:
    """Food-101: ``meta/classes.txt`` and ``meta/{train,test}.txt`` lines ``<class>/<id>``."""
    src = Path(src)
    base = src / "food-101" if (src / "food-101").is_dir() else src
    classes_path = base / "meta" / "classes.txt"
    if not classes_path.is_file():
        raise AdaptError(f"Food-101 meta/classes.txt not found under {base}")
    classes = [line.strip() for line in read_source_text(classes_path, "food101").splitlines() if line.strip()]
    index = {name: i for i, name in enumerate(classes)}
    chosen = select_splits(["train", "test"], splits, "food101")
    listing = Listing("food101", "image", classes, {})
    for split in chosen:
        path = listing.origins[split] = base / "meta" / f"{split}.txt"
        if not path.is_file():
            raise AdaptError(f"Food-101 split file {path} not found")
        items = []
        for number, line in enumerate(read_source_text(path, "food101").splitlines(), 1):
            rel = line.strip()
            if not rel:
                continue
            name = rel.split("/")[0]
            if name not in index or "/" not in rel:
                raise AdaptError(f"{path}:{number}: {rel!r} is not '<class>/<id>' with a class of classes.txt")
            item = list_item(split, base / "images", rel + ".jpg", index[name], listing)
            if item:
                items.append(item)
        listing.splits[split] = unique_keys(items)
    return listing


def find(src: Path, opts: SourceOptions) -> Found:
    return Found([(None, list_food101(src, opts.splits))])


register(DataSource("food101", "Food-101 (meta/ list files, images/)", find, order=60))
