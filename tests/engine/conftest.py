"""Small prepared shard folders for the engine tests (real JPEG images and VP9 clips, via prepare)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.synthetic import moving_square, write_image_folder, write_ssv2_layout

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}

# Shared settings: a tiny ViT at 32x32 (2x2 patches) keeps every run to a few seconds.
TINY = ["--set", "model.img_size=32", "--set", "data.workers=0"]


def colour_images(count: int, colour: tuple[int, int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        noise = rng.integers(-40, 40, size=(32, 32, 3))
        images.append(np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8))
    return images


def prepare(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["prepare", *args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def image_shards(tmp_path_factory) -> Path:
    """3 colour classes: 16 train, 6 validation, 6 test images each."""
    root = tmp_path_factory.mktemp("colours")
    splits = {
        split: {name: colour_images(n, rgb, seed=hash((split, name)) % 1000) for name, rgb in COLOURS.items()}
        for split, n in (("train", 16), ("validation", 6), ("test", 6))
    }
    write_image_folder(root / "src", splits)
    prepare(["imagefolder", str(root / "src"), "--shards", str(root / "shards"), "--samples-per-shard", "10"])
    return root / "shards"


@pytest.fixture(scope="session")
def video_shards(tmp_path_factory) -> Path:
    """SSv2 layout, 2 motion classes (left / right), 16 x 32x32 frames per clip."""
    root = tmp_path_factory.mktemp("motion")
    clips, splits = [], {"train": [], "validation": []}
    templates = {"left": "Pushing [something] from right to left", "right": "Pushing [something] from left to right"}
    for i in range(24):
        direction = "left" if i % 2 else "right"
        clip_id = str(1000 + i)
        clips.append((clip_id, templates[direction], ["box"], moving_square(direction, 16, 32, 32, seed=i)))
        splits["train" if i < 16 else "validation"].append(clip_id)
    write_ssv2_layout(root / "src", clips, splits)
    prepare(["ssv2", str(root / "src"), "--shards", str(root / "shards"), "--samples-per-shard", "6"])
    return root / "shards"
