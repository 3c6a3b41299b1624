"""Tiny trained runs for the export tests, with their trained tensors moved away from identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.synthetic import write_image_folder
from tests.engine.conftest import TINY, colour_images, image_shards, prepare, video_shards  # noqa: F401

runner = CliRunner()

# Small method options keep every run to a couple of seconds.
OPTIONS = {
    "adaptformer": ["--set", "method.mid_dim=8"],
    "arc": ["--set", "method.dim=4"],
    "arc_att": ["--set", "method.dim=4"],
    "vpt_shallow": ["--set", "method.tokens=2"],
    "vpt_deep": ["--set", "method.tokens=1"],
    "linear": [],
    "full": [],
    "adapter_plus": ["--set", "method.bottleneck=4"],
    "lora": ["--set", "method.r=4"],
    "dora": ["--set", "method.r=4"],
}
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2"]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def finetune(data: Path, out: Path, method: str, *extra: str) -> Path:
    result = invoke("finetune", "--method", method, "--recipe", "quick", "--data", data, "--out", out,
                    *TINY, *SHORT, *OPTIONS.get(method, []), *extra)
    assert result.exit_code == 0, result.output
    return out


@torch.no_grad()
def move_away_from_identity(run: Path, seed: int = 0) -> None:
    """Add noise to every trained tensor (both weight files), so no merge can pass trivially."""
    from adaptcli.io import read_safetensors as load_tensors, save_tensors

    generator = torch.Generator().manual_seed(seed)
    for name in ("trainable.safetensors", "best.safetensors"):
        path = run / name
        if not path.exists():
            continue
        tensors, meta = load_tensors(path)
        for key, value in tensors.items():
            if not value.is_floating_point() or ".base_layer." in key:
                continue  # ARC saves the frozen norm it wraps: backbone weights, not trained ones
            noise = torch.randn(value.shape, generator=generator)
            if key.endswith("running_var"):
                tensors[key] = value.abs() + 0.5 + noise.abs()
            else:
                tensors[key] = value + 0.3 * noise
        save_tensors(path, tensors, {k: v for k, v in meta.items()})


class Runs:
    """Train each (data, method, model) once per test session."""

    def __init__(self, root: Path, shards: dict[str, Path]):
        self.root, self.shards, self.cache = root, shards, {}

    def get(self, method: str, data: str = "colours", *extra: str) -> Path:
        key = (method, data, extra)
        if key not in self.cache:
            out = self.root / f"{data}-{method}-{len(self.cache)}"
            finetune(self.shards[data], out, method, *extra)
            move_away_from_identity(out, seed=len(self.cache))
            self.cache[key] = out
        return self.cache[key]


@pytest.fixture(scope="session")
def two_colour_shards(tmp_path_factory) -> Path:
    """Another task: 2 classes (yellow / purple), to give a second adapter on the same backbone."""
    root = tmp_path_factory.mktemp("two-colours")
    colours = {"yellow": (210, 210, 30), "purple": (150, 30, 170)}
    splits = {
        split: {name: colour_images(n, rgb, seed=7 + n) for name, rgb in colours.items()}
        for split, n in (("train", 12), ("validation", 4), ("test", 4))
    }
    write_image_folder(root / "src", splits)
    prepare(["imagefolder", str(root / "src"), "--shards", str(root / "shards"), "--samples-per-shard", "10"])
    return root / "shards"


@pytest.fixture(scope="session")
def runs(tmp_path_factory, image_shards, video_shards, two_colour_shards) -> Runs:  # noqa: F811
    shards = {"colours": image_shards, "motion": video_shards, "two": two_colour_shards}
    return Runs(tmp_path_factory.mktemp("runs"), shards)


def header(path: Path) -> dict:
    from adaptcli.deploy import read_header

    return read_header(path)
