"""A prepared shard folder and its manifest, read once and passed as one value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adaptcli.data.manifest import Manifest, SplitInfo, read_manifest
from adaptcli.errors import AdaptError


@dataclass(frozen=True)
class ShardFolder:
    """A folder ``adaptcli prepare`` wrote and its ``dataset.json``: what loaders, counts and sessions take."""

    path: Path
    manifest: Manifest

    @classmethod
    def read(cls, path: str | Path) -> ShardFolder:
        """The folder with its manifest; a one-line error when the manifest is missing or invalid."""
        return cls(Path(path), read_manifest(path))

    def split(self, name: str) -> SplitInfo:
        """The manifest's record of split ``name``."""
        return self.manifest.split(name)

    def urls(self, split: str) -> list[str]:
        """The shard files of ``split`` (paths), as the manifest lists them; none is an error."""
        info = self.split(split)
        if not info.shards:
            raise AdaptError(f"split '{split}' of {self.path} has no samples")
        return [str(self.path / name) for name in info.shards]

    def require_shards(self, urls: list[str]) -> None:
        """A one-line error when every shard of ``urls`` is missing (some missing: the stream skips them)."""
        missing = [url for url in urls if not Path(url).is_file()]
        if missing and len(missing) == len(urls):
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise AdaptError(f"the training shards of {self.path} are missing ({Path(missing[0]).name}{more}); "
                             "prepare the data again")


__all__ = ["ShardFolder"]
