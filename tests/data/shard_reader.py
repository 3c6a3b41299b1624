"""Reading what ``prepare`` wrote, for the data tests: a shard's samples, a split's, an image's pixels.

Imported as ``tests.data.shard_reader`` (not from ``conftest``: that bare name is whichever folder's
conftest was imported last, which changes with the files pytest-xdist gives one worker)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path


def read_tar_samples(path: Path) -> dict[str, dict[str, bytes]]:
    """key -> {field: bytes} from one shard, like WebDataset groups them."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            base = member.name.rsplit("/", 1)
            stem = base[-1]
            key_tail, field = stem.split(".", 1)
            key = (base[0] + "/" + key_tail) if len(base) == 2 else key_tail
            samples.setdefault(key, {})[field] = tar.extractfile(member).read()
    return samples


def read_split(out: Path, split: str) -> dict[str, dict[str, bytes]]:
    manifest = json.loads((out / "dataset.json").read_text())
    samples: dict[str, dict[str, bytes]] = {}
    for name in manifest["splits"][split]["shards"]:
        part = read_tar_samples(out / name)
        assert not set(part) & set(samples), "duplicate keys across shards"
        samples.update(part)
    return samples


def decode_image(data: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
