"""Class-by-class listings are mixed across shards (the shuffle buffer would hold one class otherwise)."""

from __future__ import annotations

import tarfile

import numpy as np
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.synthetic import write_image_folder


def test_every_shard_of_a_class_sorted_folder_mixes_classes(tmp_path):
    rng = np.random.default_rng(0)
    classes = {f"c{i}": [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(12)] for i in range(4)}
    write_image_folder(tmp_path / "src", {"train": classes})
    result = CliRunner().invoke(app, ["prepare", "imagefolder", str(tmp_path / "src"), "--shards",
                                      str(tmp_path / "out"), "--samples-per-shard", "8", "--no-progress"])
    assert result.exit_code == 0, result.output
    shards = sorted((tmp_path / "out").glob("train-*.tar"))
    assert len(shards) == 6
    for shard in shards:
        with tarfile.open(shard) as tar:
            labels = {tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".cls")}
        assert len(labels) >= 2, f"{shard.name} holds a single class"
