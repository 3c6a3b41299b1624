"""Encode a :class:`Listing` into shards: parallel, deterministic, resumable.

Shard ``i`` of a split always holds the items ``i*N .. (i+1)*N-1`` of that split in a fixed
pseudo-random order (sorted by a hash of the key, so classes listed folder by folder are mixed
across and within shards; N = samples per shard), whatever the worker count, and the main process writes every shard in
that order. A shard is written as ``name.tar.tmp`` and renamed when complete; the progress file
is updated atomically after each rename, and ``dataset.json`` is written last. A rerun after a
kill keeps the shards the progress file vouches for and redoes the others.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from adaptcli.data.prepare.cores import decoding_workers
from adaptcli.data.prepare.encode import EncodeOptions, Encoded, Skipped, encode_item
from adaptcli.data.prepare.found import check_listing_found, check_written
from adaptcli.data.prepare.projection import Projection, check_space, free_bytes, project, size_text
from adaptcli.data.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    SplitInfo,
    write_manifest,
)
from adaptcli.data.names import check_split_name
from adaptcli.data.prepare.shard_writer import TMP_SUFFIX, ShardWriter, shard_name
from adaptcli.data.prepare.sources.base import Item, Listing, SourceOptions, empty_classes_note, split_origins_line
from adaptcli.data.prepare.sources.registry import list_dataset
from adaptcli.errors import AdaptError
from adaptcli.files import read_json
from adaptcli.io import write_text
from adaptcli.ownership import Marker, claim_folder, remove_created, uncreated_top

STATE_NAME = ".prepare-state.json"
PARTS_DIR = ".parts"  # the unmerged parts of ``prepare --part K/N`` (parts.py)
PARTS_FILE = "parts.json"  # in PARTS_DIR: the parts' settings (marks the folder as adaptcli's)
#: What prepare writes in a shard folder (--overwrite deletes these and nothing else).
SHARD_ENTRIES = (MANIFEST_NAME, STATE_NAME, "*.tar", "*" + TMP_SUFFIX, PARTS_DIR)
DEFAULT_SAMPLES_PER_SHARD = {"video": 200, "image": 2000}


@dataclass
class PrepareOptions:
    """Knobs of one ``prepare`` run (``workers`` does not change the output)."""

    short_side: int | None = 256
    quality: int = 90
    samples_per_shard: int | None = None
    workers: int = 0
    overwrite: bool = False
    progress: bool = True
    fps: float | None = None  # video: store frames at this rate at most
    dry_run: bool = False  # print the projection, write nothing
    ignore_space: bool = False  # write even when the projection exceeds the free space
    echo: Callable[[str], None] | None = None  # gets the projection line

    def encode_options(self, modality: Any) -> EncodeOptions:
        return EncodeOptions(modality, self.short_side, self.quality, self.fps if modality == "video" else None)


@dataclass
class PrepareResult:
    """What a run produced."""

    out: Path
    manifest: Manifest
    written: int
    skipped: int
    seconds: float
    bytes: int
    reused_shards: int
    projection: Projection | None = None


def mixed_order_key(key: str) -> tuple[str, str]:
    """Sort key that interleaves classes deterministically.

    Datasets are often listed class by class; in key order a shard (and so the training stream's
    shuffle buffer) would hold one or two classes only.
    """
    return hashlib.sha1(key.encode()).hexdigest(), key


def run_settings(listing: Listing, options: PrepareOptions) -> dict[str, Any]:
    """The settings recorded in the manifest and compared on a rerun."""
    per_shard = options.samples_per_shard or DEFAULT_SAMPLES_PER_SHARD[listing.modality]
    settings: dict[str, Any] = {"dataset": listing.dataset, **listing.settings,
                                "splits": list(listing.splits), "samples_per_shard": per_shard,
                                "format_version": FORMAT_VERSION}
    if listing.modality == "video":
        settings.update(short_side=options.short_side, quality=options.quality)
        if options.fps:  # only when asked: folders prepared before --fps existed resume as they are
            settings["fps"] = options.fps
    return settings


def _io_leftover(name: str) -> bool:
    """A temporary file of :func:`adaptcli.io.atomic_path` left by a killed run."""
    return name.startswith(".tmp-") and name.endswith((MANIFEST_NAME, STATE_NAME))


def _check_out(out: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """Refuse a folder holding something else; return the progress record to resume from.

    Only a folder adaptcli wrote (it has ``dataset.json`` or the prepare state) is ever replaced.
    """
    claim = claim_folder(out, (MANIFEST_NAME, STATE_NAME, Marker(f"{PARTS_DIR}/{PARTS_FILE}")), SHARD_ENTRIES,
                         True if overwrite else None, what="adaptcli shards", option="--shards")
    if not overwrite and (out / PARTS_DIR).is_dir():
        raise AdaptError(f"--shards {out} holds the unmerged parts of prepare --part runs; finish them (then "
                         "prepare --merge), or pass --overwrite to replace them")
    out.mkdir(parents=True, exist_ok=True)
    if not claim.found:
        return {"settings": settings, "shards": {}}
    if overwrite:
        claim.clear()
        return {"settings": settings, "shards": {}}
    state_path, manifest_path = out / STATE_NAME, out / MANIFEST_NAME
    previous: dict[str, Any] | None = None
    for path in (state_path, manifest_path):
        if path.is_file():
            try:
                previous = read_json(path)
            except ValueError:
                previous = None
            break
    if previous is None:  # an unreadable progress file of ours: start again in place
        return {"settings": settings, "shards": {}}
    old = previous.get("settings")
    if old != settings:
        what = "another dataset" if (old or {}).get("dataset") != settings["dataset"] else "other settings"
        changed = sorted(k for k in set(old or {}) | set(settings) if (old or {}).get(k) != settings.get(k))
        shown = "; ".join(f"{k}: stored {str((old or {}).get(k))[:60]}, now {str(settings.get(k))[:60]}"
                          for k in changed[:3])
        raise AdaptError(f"--shards {out} holds {what} ({shown}): pass --overwrite "
                         "to replace it, or choose another folder")
    if "shards" not in previous:  # finished run whose progress file is gone: redo, same result
        previous = {"settings": settings, "shards": {}}
    return previous


def _chunks(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _encoded_stream(items: list[Item], options: EncodeOptions, workers: int) -> Iterator[Encoded | Skipped]:
    """Encode in order, in a process pool when ``workers > 1``."""
    func = partial(encode_item, options=options)
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield func(item)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(processes=workers) as pool:
        yield from pool.imap(func, items, chunksize=1)


def _merge_stats(parts: list[dict[str, Any]]) -> dict[str, float] | None:
    parts = [p for p in parts if p and p.get("count")]
    if not parts:
        return None
    count = sum(p["count"] for p in parts)
    total = sum(p["total"] for p in parts)
    return {"min": min(p["min"] for p in parts), "max": max(p["max"] for p in parts),
            "mean": round(total / count, 3), "total": total}


Plan = list[tuple[str, str, list[Item]]]  # (split, shard file, items), in writing order


def prepare(listing: Listing, out: str | Path, options: PrepareOptions) -> PrepareResult:
    """Write ``listing`` as shards plus ``dataset.json`` into ``out`` (resuming a killed run)."""
    start = time.time()
    out = Path(out)
    settings = run_settings(listing, options)
    plan = _plan(listing, settings["samples_per_shard"])
    if options.dry_run:  # the folder checks of a real run, then the projection of writing it all
        claim_folder(out, (MANIFEST_NAME, STATE_NAME, Marker(f"{PARTS_DIR}/{PARTS_FILE}")), SHARD_ENTRIES, None,
                     what="adaptcli shards", option="--shards")
        return dry_run_result(listing, out, options, plan, settings, start)
    created = not out.exists()
    created_top = uncreated_top(out)
    previous = _check_out(out, settings, options.overwrite)
    done = _reusable_shards(out, plan, previous)
    projection = check_projection(listing, options, [p for p in plan if p[1] not in done], out, created)
    state = {"settings": settings, "shards": dict(done)}
    write_text(out / STATE_NAME, json.dumps(state))
    _write_shards(out, listing, options, plan, state)
    manifest = _manifest(listing, plan, state, settings)
    try:
        check_written(manifest, out)
    except AdaptError:
        if created_top is not None:  # refused: a folder this call created is not left behind
            remove_created(out, created_top)
        raise
    write_manifest(out, manifest)
    splits = manifest.splits
    size = sum((out / n).stat().st_size for info in splits.values() for n in info.shards)
    return PrepareResult(out=out, manifest=manifest, written=sum(i.samples for i in splits.values()),
                         skipped=len(manifest.skipped), seconds=time.time() - start, bytes=size,
                         reused_shards=len(done), projection=projection)


def dry_run_result(listing: Listing, out: Path, options: PrepareOptions, plan: Plan, settings: dict[str, Any],
                   start: float) -> PrepareResult:
    """``--dry-run``: the projection of writing ``plan`` (echoed), nothing written."""
    projection = _project(listing, options, plan, out)
    return PrepareResult(out=out, manifest=_manifest(listing, [], {"shards": {}}, settings), written=0, skipped=0,
                         seconds=time.time() - start, bytes=0, reused_shards=0, projection=projection)


def check_projection(listing: Listing, options: PrepareOptions, plan: Plan, out: Path,
                     created: bool) -> Projection | None:
    """Project writing ``plan`` (echoed) and refuse, before any shard, when it does not fit ``out``'s
    filesystem (unless ``ignore_space``); ``created``: ``out`` is this run's, removed while still empty."""
    projection = _project(listing, options, plan, out)
    if projection is not None and not options.ignore_space:
        try:
            check_space(projection, out)
        except AdaptError:
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            raise
    return projection


def _project(listing: Listing, options: PrepareOptions, plan: Plan, out: Path) -> Projection | None:
    """Project (and echo) the bytes and time of writing ``plan``: nothing to project when it is empty."""
    items = [item for _, _, chunk in plan for item in chunk]
    if not items:
        return None
    projection = project(items, options.encode_options(listing.modality), len(plan))
    if options.echo is not None:
        unit = "clip" if listing.modality == "video" else "image"
        options.echo(f"{projection.line(listing.dataset, unit, options.workers)}; {size_text(free_bytes(out))} free "
                     "there" if projection is not None else
                     f"{listing.dataset}: no projection: the {unit}s encoded first were all unreadable")
    return projection


def _plan(listing: Listing, per_shard: int) -> Plan:
    """Every shard to write: each split's items in mixed order, cut into shards of ``per_shard``."""
    plan: Plan = []
    for split, items in listing.splits.items():
        check_split_name(split, f"{listing.dataset} data")
        items = sorted(items, key=lambda item: mixed_order_key(item.key))
        for index, chunk in enumerate(_chunks(items, per_shard)):
            plan.append((split, shard_name(split, index), chunk))
    return plan


def _reusable_shards(out: Path, plan: Plan, previous: dict[str, Any]) -> dict[str, Any]:
    """The shards a killed run completed (intact on disk); deletes the leftovers of the rest."""
    done: dict[str, Any] = {}
    for _, name, _ in plan:
        record = previous["shards"].get(name)
        if record is None:
            continue
        if record["samples"] == 0 or ((out / name).is_file() and (out / name).stat().st_size == record["bytes"]):
            done[name] = record
    for entry in out.iterdir():  # leftovers of a killed run
        if entry.name.endswith(TMP_SUFFIX) or _io_leftover(entry.name) \
                or (entry.name.endswith(".tar") and entry.name not in done):
            entry.unlink()
    return done


def _write_shards(out: Path, listing: Listing, options: PrepareOptions, plan: Plan, state: dict[str, Any]) -> None:
    """Encode and write the shards ``state`` does not have yet, recording each in the state file."""
    from tqdm import tqdm

    done = state["shards"]
    todo = [(split, name, chunk) for split, name, chunk in plan if name not in done]
    total = sum(len(chunk) for _, _, chunk in plan)
    unit = "clip" if listing.modality == "video" else "img"
    bar = tqdm(total=total, unit=unit, file=sys.stderr, disable=not options.progress,
               desc=f"{listing.dataset}", dynamic_ncols=True)
    bar.update(total - sum(len(chunk) for _, _, chunk in todo))
    skipped_count = len(listing.skipped) + sum(len(r["skipped"]) for r in done.values())
    bar.set_postfix(skipped=skipped_count)
    encode_opts = options.encode_options(listing.modality)
    stream = _encoded_stream([item for _, _, chunk in todo for item in chunk], encode_opts, options.workers)
    try:
        for split, name, chunk in todo:
            skipped: list[dict[str, Any]] = []
            frames: list[int] = []
            with ShardWriter(out / name) as writer:
                for _ in chunk:
                    result = next(stream)
                    if isinstance(result, Skipped):
                        skipped.append({"split": split, "key": result.key, "path": result.path,
                                        "reason": result.reason})
                        skipped_count += 1
                    else:
                        writer.add(result)
                        if result.frames is not None:
                            frames.append(result.frames)
                    bar.update(1)
                    bar.set_postfix(skipped=skipped_count, refresh=False)
            stats = {"count": len(frames), "total": sum(frames), "min": min(frames, default=0),
                     "max": max(frames, default=0)}
            done[name] = {"split": split, "samples": writer.count, "bytes": writer.size,
                          "frames": stats, "skipped": skipped}
            write_text(out / STATE_NAME, json.dumps(state))
    finally:
        stream.close()
        bar.close()


def _manifest(listing: Listing, plan: Plan, state: dict[str, Any], settings: dict[str, Any]) -> Manifest:
    """``dataset.json`` of the written shards: per split its shards, samples and frame statistics."""
    splits: dict[str, SplitInfo] = {}
    skipped_all = [s for s in listing.skipped if s["split"] in listing.splits]
    for split in listing.splits:
        records = [(name, state["shards"][name]) for s, name, _ in plan if s == split]
        stats = _merge_stats([r["frames"] for _, r in records]) if listing.modality == "video" else None
        kept = [(n, r) for n, r in records if r["samples"]]
        samples, size = sum(r["samples"] for _, r in kept), sum(r["bytes"] for _, r in kept)
        splits[split] = SplitInfo(shards=[n for n, _ in kept], samples=samples, frames=stats,
                                  shard_samples=[r["samples"] for _, r in kept], bytes=size,
                                  bytes_per_sample=round(size / samples) if samples else None,
                                  labelled=all(item.label is not None for item in listing.splits[split]))
        skipped_all += [s for _, r in records for s in r["skipped"]]
    return Manifest(dataset=listing.dataset, modality=listing.modality, classes=listing.classes,
                    splits=splits, hflip=listing.hflip, task=listing.task, skipped=skipped_all,
                    settings=settings)


def _silent(line: str) -> None:
    """The default ``echo``/``warn`` of :func:`prepare_dataset`: print nothing."""


def prepare_dataset(
    dataset: str,
    src: Path,
    shards: Path,
    *,
    splits: str | None = None,
    short_side: int = 256,
    workers: int | None = None,
    samples_per_shard: int | None = None,
    quality: int = 90,
    overwrite: bool = False,
    labels: Path | None = None,
    videos: Path | None = None,
    images: Path | None = None,
    split_dir: Path | None = None,
    split_id: int = 1,
    task: str | None = None,
    fgvc_dataset: str | None = None,
    allow_empty_classes: bool = False,
    progress: bool = True,
    fps: float | None = None,
    dry_run: bool = False,
    ignore_space: bool = False,
    echo: Callable[[str], None] = _silent,
    warn: Callable[[str], None] = _silent,
    run: Callable[[Listing, Path, PrepareOptions], PrepareResult] = prepare,
) -> list[PrepareResult]:
    """What ``adaptcli prepare`` does: read ``src`` as ``dataset``, write shards under ``shards``.

    ``echo`` gets the projection and one summary line per shard folder written, ``warn`` the source's
    notes and the skipped-sample warnings (the CLI prints them on stdout and stderr). ``run`` writes one
    listing (:func:`prepare`; ``parts.PartRun`` for ``--part K/N`` and ``--merge``). ``dry_run``: only
    the projection.
    """
    from tqdm import tqdm

    n_workers = decoding_workers(workers)
    split_list = [s.strip() for s in splits.split(",") if s.strip()] if splits else None
    opts = SourceOptions(splits=split_list, labels=labels, videos=videos, images=images,
                         split_dir=split_dir, split_id=split_id, task=task, fgvc_dataset=fgvc_dataset,
                         allow_empty_classes=allow_empty_classes)
    found = list_dataset(dataset, src, opts)
    for sub, listing in found.listings:  # finding nothing is an error, before anything is written
        check_listing_found(listing, src, sub)
    for note in found.notes:
        warn(note)
    results = []
    for sub, listing in found.listings:
        out = shards / sub if sub else shards
        if fps and listing.modality != "video":
            raise AdaptError(f"--fps sets the frame rate of video; {dataset} is images: drop --fps")
        result = run(listing, out, PrepareOptions(
            short_side=short_side, quality=quality, samples_per_shard=samples_per_shard,
            workers=n_workers, overwrite=overwrite, progress=progress, fps=fps, dry_run=dry_run,
            ignore_space=ignore_space, echo=echo))
        if dry_run:
            results.append(result)
            continue
        shard_count = sum(len(info.shards) for info in result.manifest.splits.values())
        reused = f", {result.reused_shards} reused from an earlier run" if result.reused_shards else ""
        task = ", multi-label" if result.manifest.multi_label else ""
        echo(f"{result.manifest.dataset}{'/' + sub if sub else ''}{task}: wrote {result.written} samples "
             f"in {shard_count} shards to {out}, skipped {result.skipped}, {result.seconds:.1f} s, "
             f"{tqdm.format_sizeof(result.bytes, 'B', 1024)} on disk{reused}")
        echo(split_origins_line(listing, src, {s: i.samples for s, i in result.manifest.splits.items()}, sub))
        if result.skipped:
            warn(f"warning: skipped {result.skipped} samples (see {out / MANIFEST_NAME} \"skipped\")")
        empty = empty_classes_note(listing, sub)
        if empty:
            warn(empty)
        results.append(result)
    return results


__all__ = ["check_projection", "dry_run_result", "PrepareOptions", "PrepareResult", "prepare", "prepare_dataset", "run_settings", "STATE_NAME"]
