"""Deterministic tar shards, written under a temporary name and renamed when complete."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from adaptcli.data.encode import Encoded

TMP_SUFFIX = ".tmp"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: str | Path, samples: Iterable[Encoded]) -> int:
    """Write ``samples`` to ``path`` (via ``path.tmp`` + rename); return the size in bytes.

    Identical samples give byte-identical files (fixed mtime, owner and order).
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "wb") as handle:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for sample in samples:
                for name, data in sample.files:
                    _add(tar, f"{sample.key}.{name}", data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path.stat().st_size


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


__all__ = ["write_shard", "shard_name", "TMP_SUFFIX"]
