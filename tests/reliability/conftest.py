"""Tiny prepared data shared by the reliability tests (built once per session) and helpers to
damage copies of it and to checksum folders."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.engine.conftest import COLOURS, colour_images, prepare

TINY = ["--set", "model.img_size=32", "--set", "data.workers=0"]


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """An image folder: 3 colour classes, 8 train / 3 validation / 3 test images each."""
    from adaptcli.data.synthetic import write_image_folder

    root = tmp_path_factory.mktemp("tiny") / "src"
    splits = {split: {name: colour_images(n, rgb, seed=len(split) * 7 + i) for i, (name, rgb) in enumerate(COLOURS.items())}
              for split, n in (("train", 8), ("validation", 3), ("test", 3))}
    write_image_folder(root, splits)
    return root


@pytest.fixture(scope="session")
def tiny_shards(tiny_source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_shards") / "shards"
    prepare(["imagefolder", str(tiny_source), "--shards", str(out), "--samples-per-shard", "6", "--no-progress"])
    return out


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def checksums(*roots: Path) -> dict[str, str]:
    """Path -> sha1 of every file (and '<dir>' for every folder) under ``roots``."""
    found: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted([root, *root.rglob("*")]):
            if path.is_symlink():
                found[str(path)] = f"-> {path.readlink()}"
            elif path.is_dir():
                found[str(path)] = "<dir>"
            elif not path.is_file():  # a FIFO or device: reading it would block or never end
                found[str(path)] = f"<special {path.stat().st_mode:o}>"
            else:
                try:
                    found[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
                except PermissionError:
                    found[str(path)] = "<unreadable>"
    return found


def train_shards(shards: Path) -> list[Path]:
    return sorted(shards.glob("train-*.tar"))


def truncate_in_first_sample(shard: Path) -> None:
    """Cut the tar after its first header and a few bytes of the first member's data."""
    data = shard.read_bytes()
    shard.write_bytes(data[:512 + 100])


def message_lines(stderr: str) -> list[str]:
    """stderr without progress bars (tqdm's ``[00:01<00:02, ...]`` redraws) and library warnings."""
    import re

    lines = [part for line in stderr.split("\n") for part in line.split("\r")]
    lines = [re.sub(r"^.*\[(\d\d:\d\d|\?)[^\]]*\]", "", line).strip() for line in lines]  # a bar, then text
    return [line for line in lines if line]
