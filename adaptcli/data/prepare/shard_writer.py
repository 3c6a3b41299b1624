"""Deterministic tar shards, written under a temporary name and renamed when complete."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from types import TracebackType

from adaptcli.data.prepare.encode import Encoded
from adaptcli.io import naming_errors

TMP_SUFFIX = ".tmp"


class ShardWriter:
    """Stream samples into ``path.tmp``; on a clean exit, fsync and rename it to ``path``.

    Identical samples give byte-identical files (fixed mtime, owner and order). A shard that got
    no sample is not created. After a crash only the ``.tmp`` file is left behind.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + TMP_SUFFIX)
        self.count = 0
        self.size = 0
        self._handle = open(self.tmp, "wb")
        self._tar = tarfile.open(fileobj=self._handle, mode="w", format=tarfile.GNU_FORMAT)

    def add(self, sample: Encoded) -> None:
        with naming_errors(self.path, self.tmp):
            self._add(sample)

    def _add(self, sample: Encoded) -> None:
        for name, data in sample.files:
            info = tarfile.TarInfo(f"{sample.key}.{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None:  # leave the .tmp as a crash would; the next run removes it
            try:
                self._handle.close()
            except OSError:  # a full disk fails the buffered flush again: the first error is the one to show
                pass
            return
        with naming_errors(self.path, self.tmp):
            self._tar.close()
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        if self.count == 0:
            self.tmp.unlink()
            return
        os.replace(self.tmp, self.path)
        self.size = self.path.stat().st_size


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


__all__ = ["ShardWriter", "shard_name", "TMP_SUFFIX"]
