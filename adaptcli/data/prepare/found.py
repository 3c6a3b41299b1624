"""Finding nothing is an error: ``prepare`` refuses a split with no sample to encode, before it writes
anything, and a split none of whose files could be read, before it writes ``dataset.json``."""

from __future__ import annotations

from pathlib import Path
from adaptcli.data.manifest import Manifest
from adaptcli.data.prepare.sources.base import Listing
from adaptcli.errors import AdaptError

LAYOUTS_HINT = "docs/data.md shows the folder each dataset expects"


def _name(listing: Listing, sub: str | None) -> str:
    return f"{listing.dataset}/{sub}" if sub else listing.dataset


def check_listing_found(listing: Listing, src: Path, sub: str | None = None) -> None:
    """Every split of ``listing`` lists at least one file that is there; else one line saying what was
    looked for where (the first file a list names that is missing, or the folder searched)."""
    name = _name(listing, sub)
    if not listing.splits:
        raise AdaptError(f"{name}: found no split in {src}; pass the dataset's root folder ({LAYOUTS_HINT})")
    for split, items in listing.splits.items():
        if items:
            continue
        absent = [s for s in listing.skipped if s.get("split") == split]
        if absent:
            first = absent[0]
            raise AdaptError(f"{name}: split '{split}' found none of its {len(absent)} listed file(s) "
                             f"(looked for {first['path']}: {first['reason']}); pass the dataset's root folder as "
                             f"SRC, or --videos/--images where the files lie elsewhere ({LAYOUTS_HINT})")
        raise AdaptError(f"{name}: split '{split}' has no sample in {src}; pass the dataset's root folder as SRC "
                         f"({LAYOUTS_HINT})")


def check_written(manifest: Manifest, out: Path) -> None:
    """A split whose every file was skipped as unreadable is refused, before ``dataset.json`` is written."""
    for split, info in manifest.splits.items():
        if info.samples:
            continue
        skipped = [s for s in manifest.skipped if s.get("split") == split]
        reason = f" (first: {skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
        raise AdaptError(f"{manifest.dataset}: none of the {len(skipped)} file(s) of split '{split}' could be read"
                         f"{reason}; no dataset.json was written: check the files, then run prepare again")


__all__ = ["check_listing_found", "check_written"]
