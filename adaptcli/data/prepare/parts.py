"""``prepare --part K/N`` and ``prepare --merge``: one dataset prepared by N processes on any machines.

A part is a fixed share of the shards a one-part run writes: the run's plan (every split's shards in
order, :func:`~adaptcli.data.prepare.prepare._plan`) dealt round-robin, shard j to part j mod N + 1,
so the parts are disjoint, cover every shard and each gets about 1/N of every large split. Part K
writes its shards, under the names the one-part run gives them, with its own progress file, into
``SHARDS/.parts/K-of-N/``: resumable like a whole run, and no part touches another's files.
``SHARDS/.parts/parts.json``, written by the first part, records the settings, N and a digest of the
listing; a part with other settings, another N or another listing of the source is refused before
any work, and so is a second process running the same part at the same time (a ``flock``).

The merge runs when the last part finishes and finds every part done in the folder, or on
``prepare --merge`` (the parts' command with ``--merge`` for ``--part K/N``; after copying the parts'
folders of several machines into one). It refuses missing or unfinished parts, parts of another N
and parts made with other settings; then it moves the shards up into SHARDS and writes the progress
file and ``dataset.json`` over all of them: the folder is then the one a one-part run writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptcli.data.manifest import MANIFEST_NAME, write_manifest
from adaptcli.data.prepare.found import check_written
from adaptcli.data.prepare.prepare import (
    PARTS_DIR,
    PARTS_FILE,
    SHARD_ENTRIES,
    STATE_NAME,
    Plan,
    PrepareOptions,
    PrepareResult,
    _check_out,
    _manifest,
    _plan,
    _reusable_shards,
    _write_shards,
    check_projection,
    dry_run_result,
    prepare,
    run_settings,
)
from adaptcli.data.prepare.sources.base import Listing
from adaptcli.errors import AdaptError
from adaptcli.files import read_json
from adaptcli.io import write_text
from adaptcli.ownership import Marker, claim_folder

#: The most parts one dataset may be cut into (a Slurm array of at most this many tasks).
MAX_PARTS = 1000
_PART_TEXT = re.compile(r"(\d{1,7})/(\d{1,7})")
_PART_FOLDER = re.compile(r"(\d+)-of-(\d+)")


@dataclass(frozen=True)
class Part:
    """Part ``index`` of ``count`` (both from 1)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def folder(self) -> str:
        return f"{self.index}-of-{self.count}"


def parse_part(text: str) -> Part:
    """``--part K/N`` range-checked (1 <= K <= N <= MAX_PARTS), or a one-line error."""
    match = _PART_TEXT.fullmatch(text.strip())
    fix = f"give K/N with 1 <= K <= N <= {MAX_PARTS}, e.g. --part 1/4 to --part 4/4 for four parts"
    if match is None:
        raise AdaptError(f"--part {text[:40]!r} is not K/N: {fix}")
    part = Part(int(match[1]), int(match[2]))
    if not 1 <= part.index <= part.count <= MAX_PARTS:
        raise AdaptError(f"--part {text.strip()}: {fix}")
    return part


def select(plan: Plan, part: Part) -> Plan:
    """The shards of ``plan`` that ``part`` writes (every N-th, from the K-th); none is an error."""
    mine = plan[part.index - 1::part.count]
    if not mine:
        raise AdaptError(f"--part {part}: this data makes {len(plan)} shards, so at most {len(plan)} parts have "
                         f"work; cut it into at most {len(plan)} parts (or pass a smaller --samples-per-shard)")
    return mine


def listing_digest(plan: Plan) -> str:
    """A digest of what the source listed (every shard's samples: keys, labels, relative files).

    Absolute paths are left out: each machine may mount the source elsewhere."""
    digest = hashlib.sha256()
    for split, name, items in plan:
        for item in items:
            digest.update(json.dumps([split, name, item.key, item.label, item.meta], sort_keys=True,
                                     default=str).encode())
    return digest.hexdigest()


def _stored(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not {"settings", "parts", "listing"} <= set(data):
        raise AdaptError(f"{path} is damaged; delete the folder {path.parent} and run the parts again")
    return data


def _record_parts(path: Path, record: dict[str, Any]) -> None:
    """Write ``parts.json`` unless a part running at the same time wrote it first (``os.link``: atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    tmp.write_text(json.dumps(record))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _changes(old: Any, new: dict[str, Any]) -> str:
    """The settings that differ, in words (at most three)."""
    old = old if isinstance(old, dict) else {}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: parts {str(old.get(k))[:60]}, now {str(new.get(k))[:60]}" for k in changed[:3])


def claim_parts(out: Path, settings: dict[str, Any], digest: str, part: Part | None) -> int:
    """Check that ``out`` may hold these parts (one line, exit 2, before any work); returns N.

    ``part`` None: ``--merge``, which needs parts there already."""
    # PARTS_DIR is ignored: a part starting at the same time may have made it and not yet parts.json
    claim_folder(out, (MANIFEST_NAME, STATE_NAME, Marker(f"{PARTS_DIR}/{PARTS_FILE}")), SHARD_ENTRIES, None,
                 what="adaptcli shards", option="--shards", ignore=(PARTS_DIR,))
    record = out / PARTS_DIR / PARTS_FILE
    asked = "--merge" if part is None else f"--part {part}"
    if not record.is_file():
        if (out / MANIFEST_NAME).is_file():
            raise AdaptError(f"{asked}: --shards {out} already holds a prepared dataset (dataset.json) and no "
                             "unmerged parts: nothing to do; choose a new folder to prepare it again")
        if (out / STATE_NAME).is_file():
            raise AdaptError(f"{asked}: --shards {out} holds an unfinished run without --part; finish it without "
                             "--part, or choose a new folder for the parts")
        if part is None:
            raise AdaptError(f"--merge: --shards {out} holds no parts ({PARTS_DIR}/{PARTS_FILE} is missing); run "
                             "prepare ... --part K/N for every K first")
        _record_parts(record, {"settings": settings, "parts": part.count, "listing": digest})
    stored = _stored(record)
    if stored["settings"] != settings:
        raise AdaptError(f"{asked}: the parts in --shards {out} were made with other settings "
                         f"({_changes(stored['settings'], settings)}); run every part with the same options, or "
                         "choose a new folder")
    if part is not None and stored["parts"] != part.count:
        raise AdaptError(f"--part {part}: the parts in --shards {out} cut the data into {stored['parts']} parts; "
                         f"pass --part K/{stored['parts']}, or choose a new folder")
    if stored["listing"] != digest:
        raise AdaptError(f"{asked}: the source lists other samples than when the parts in --shards {out} began "
                         "(files or labels changed); give every part the same source, or choose a new folder")
    count = int(stored["parts"])
    strays = sorted(p.name for p in record.parent.iterdir() if p.is_dir() and not (
        (m := _PART_FOLDER.fullmatch(p.name)) and int(m[2]) == count and 1 <= int(m[1]) <= count))
    if strays:
        raise AdaptError(f"{asked}: --shards {out} holds parts that are not of its {count}-part cut ({', '.join(strays[:3])} "
                         f"in {PARTS_DIR}): they would duplicate shards; move them out of it")
    return count


@contextlib.contextmanager
def held(out: Path, part: Part) -> Iterator[None]:
    """Refuse a second process preparing the same part in the same folder while this one runs."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows)
        yield
        return
    fd = os.open(out / PARTS_DIR / f"{part.folder}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AdaptError(f"--part {part} is being prepared in --shards {out} by another process right now; run "
                             "each part once (a Slurm array: one task per K)") from None
        except OSError:  # a filesystem without locks: go on unguarded
            pass
        yield
    finally:
        os.close(fd)


def _part_records(out: Path, plan: Plan, settings: dict[str, Any], count: int,
                  required: bool) -> dict[str, Any] | None:
    """Every shard's record from the parts' progress files, in plan order; None (``required``: a
    one-line error) when a part is missing or unfinished."""
    parts = out / PARTS_DIR
    records: dict[str, Any] = {}
    missing = []
    for index in range(1, count + 1):
        part = Part(index, count)
        names = [name for _, name, _ in select(plan, part)]
        path = parts / part.folder / STATE_NAME
        try:
            state = read_json(path) if path.is_file() else {}
        except (OSError, ValueError):  # unreadable: that part has to run again
            state = {}
        if state.get("settings", settings) != settings:
            raise AdaptError(f"--part {part} in --shards {out} was made with other settings "
                             f"({_changes(state['settings'], settings)}); run it again with the same options as "
                             "the others")
        shards = state.get("shards", {})
        if not all(name in shards for name in names):
            missing.append(f"{part} ({sum(name in shards for name in names)} of {len(names)} shards)")
            continue
        for name in names:
            records[name] = (part, shards[name])
    if missing:
        if not required:
            return None
        raise AdaptError(f"--merge: --shards {out} lacks finished parts: {', '.join(missing[:4])}"
                         f"{', ...' if len(missing) > 4 else ''}; run (or rerun) those parts, then merge")
    for name, (part, record) in records.items():
        if record["samples"] and not (_holds(parts / part.folder / name, record) or _holds(out / name, record)):
            raise AdaptError(f"--merge: shard {name} of part {part} is missing or changed in --shards {out}; rerun "
                             f"--part {part}, then merge")
    return {name: records[name] for _, name, _ in plan}


def _holds(path: Path, record: dict[str, Any]) -> bool:
    """Whether ``path`` is the shard ``record`` describes (its size); a merge at the same time may move it."""
    try:
        return path.is_file() and path.stat().st_size == record["bytes"]
    except FileNotFoundError:
        return False


def _merge(listing: Listing, out: Path, plan: Plan, settings: dict[str, Any], count: int,
           required: bool, start: float) -> PrepareResult | None:
    """Move every part's shards into ``out`` and write its progress file and ``dataset.json``."""
    records = _part_records(out, plan, settings, count, required)
    if records is None:
        return None
    for name, (part, record) in records.items():
        if not record["samples"]:
            continue
        try:
            os.replace(out / PARTS_DIR / part.folder / name, out / name)
        except FileNotFoundError:  # the last two parts finished together and the other one moved it
            if not _holds(out / name, record):
                raise
    state = {"settings": settings, "shards": {name: record for name, (_, record) in records.items()}}
    write_text(out / STATE_NAME, json.dumps(state))
    manifest = _manifest(listing, plan, state, settings)
    check_written(manifest, out)  # a split none of whose files could be read: no dataset.json
    write_manifest(out, manifest)
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
    splits = manifest.splits.values()
    return PrepareResult(out=out, manifest=manifest, written=sum(i.samples for i in splits),
                         skipped=len(manifest.skipped), seconds=time.time() - start,
                         bytes=sum((out / n).stat().st_size for i in splits for n in i.shards), reused_shards=0)


def prepare_part(listing: Listing, out: Path, options: PrepareOptions, part: Part,
                 echo: Callable[[str], None]) -> PrepareResult:
    """Write ``part``'s shards into ``out/.parts/K-of-N``; merge when it finds every part done."""
    start = time.time()
    settings = run_settings(listing, options)
    plan = _plan(listing, settings["samples_per_shard"])
    mine = select(plan, part)
    if options.dry_run:  # the part's projection; nothing written (not even parts.json)
        claim_folder(out, (MANIFEST_NAME, STATE_NAME, Marker(f"{PARTS_DIR}/{PARTS_FILE}")), SHARD_ENTRIES, None,
                     what="adaptcli shards", option="--shards", ignore=(PARTS_DIR,))
        return dry_run_result(listing, out, options, mine, settings, start)
    count = claim_parts(out, settings, listing_digest(plan), part)
    folder = out / PARTS_DIR / part.folder
    with held(out, part):
        created = not folder.exists()
        previous = _check_out(folder, settings, False)
        done = _reusable_shards(folder, mine, previous)
        check_projection(listing, options, [p for p in mine if p[1] not in done], folder, created)
        state = {"settings": settings, "shards": dict(done)}
        write_text(folder / STATE_NAME, json.dumps(state))
        _write_shards(folder, listing, options, mine, state)
    merged = _merge(listing, out, plan, settings, count, False, start)
    if merged is not None:
        echo(f"--part {part} done, the last of {count} parts: merged them into {out} (dataset.json)")
        return merged
    if not folder.exists() and (out / MANIFEST_NAME).is_file():  # the last two parts finished together
        echo(f"--part {part} done; a part finishing with it merged the {count} parts into {out} (dataset.json)")
    else:
        echo(f"--part {part} done; {out / MANIFEST_NAME} is written when all {count} parts are done (by the "
             "last to finish, or by this command with --merge for --part)")
    manifest = _manifest(listing, mine, state, settings)
    return PrepareResult(out=folder, manifest=manifest, written=sum(i.samples for i in manifest.splits.values()),
                         skipped=len(manifest.skipped), seconds=time.time() - start,
                         bytes=sum(r["bytes"] for r in state["shards"].values()), reused_shards=len(done))


def merge_parts(listing: Listing, out: Path, options: PrepareOptions,
                echo: Callable[[str], None]) -> PrepareResult:
    """``prepare --merge``: one ``dataset.json`` over every part (refusing missing, other or duplicate parts)."""
    start = time.time()
    if options.dry_run:
        raise AdaptError("--merge writes no new shards: --dry-run has nothing to project; drop it")
    settings = run_settings(listing, options)
    plan = _plan(listing, settings["samples_per_shard"])
    count = claim_parts(out, settings, listing_digest(plan), None)
    merged = _merge(listing, out, plan, settings, count, True, start)
    assert merged is not None  # required=True refuses instead
    echo(f"--merge: merged the {count} parts into {out} (dataset.json)")
    return merged


@dataclass(frozen=True)
class PartRun:
    """``prepare_dataset``'s ``run`` for ``--part K/N`` (``part``) or ``--merge`` (``part`` None)."""

    part: Part | None
    echo: Callable[[str], None]

    def __call__(self, listing: Listing, out: Path, options: PrepareOptions) -> PrepareResult:
        if self.part is None:
            return merge_parts(listing, Path(out), options, self.echo)
        return prepare_part(listing, Path(out), options, self.part, self.echo)


def part_run(part: str | None, merge: bool, overwrite: bool,
             echo: Callable[[str], None]) -> Callable[[Listing, Path, PrepareOptions], PrepareResult]:
    """What ``prepare`` runs per listing for ``--part``/``--merge`` (checked before any work)."""
    if part is None and not merge:
        return prepare
    if part is not None and merge:
        raise AdaptError("--part and --merge exclude each other: run every part with --part K/N, then (unless the "
                         "last part merged them) the same command with --merge instead of --part")
    if overwrite:
        raise AdaptError(f"--overwrite does not combine with {'--merge' if merge else '--part'} (parts run at the "
                         "same time would delete each other's work): choose a new --shards folder")
    return PartRun(None if merge else parse_part(part or ""), echo)


__all__ = ["MAX_PARTS", "Part", "PartRun", "claim_parts", "merge_parts", "parse_part", "part_run", "prepare_part",
           "select"]
