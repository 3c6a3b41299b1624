"""Every input parser's error boundary: CSVs in another encoding, with extra fields, huge fields or NUL
bytes; NUS-WIDE concept lists that are empty or hold a path; a class label below 0 in a shard. Each is
one stderr line without a traceback, exit 2, and the user's files unchanged."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.synthetic import write_image
from tests.engine.conftest import colour_images
from tests.engine.test_multilabel import write_nuswide
from tests.reliability.conftest import TINY, checksums, message_lines, train_shards

runner = CliRunner()


def _one_error(args: list[str], *watched: Path) -> str:
    before = checksums(*watched)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in message_lines(result.stderr) if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, lines
    assert checksums(*watched) == before
    return lines[0]


def _image_list(root: Path, body: bytes) -> Path:
    for name, rgb in (("a.png", (200, 0, 0)), ("b.png", (0, 0, 200))):
        write_image(root / name, colour_images(1, rgb, 0)[0])
    path = root / "list.csv"
    path.write_bytes(body)
    return path


CSV_CASES = {
    "latin-1": ("path,labels\na.png,caf\xe9\nb.png,th\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
    "extra-fields": (b"path,labels\na.png,red\nb.png,blue,extra\n", "line 3 has 3 fields, the header 2"),
    "huge-field": (b"path,labels\na.png,red\nb.png," + b"x" * 200_000 + b"\n", "line 3"),
    "no-header": (b"", "needs the columns path,labels"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_a_damaged_image_list_is_one_line(tmp_path, case):
    body, expected = CSV_CASES[case]
    csv_file = _image_list(tmp_path / "src", body)
    line = _one_error(["prepare", "imagelist", str(csv_file), "--shards", str(tmp_path / "out"), "--no-progress"],
                      tmp_path / "src")
    assert expected in line and "imagelist" in line, line
    assert not (tmp_path / "out" / "dataset.json").exists()


@pytest.mark.parametrize("concepts,expected", [("", "lists no concepts"), ("sky\n../../etc\n", "not a plain name"),
                                               ("sky\nsky\n", "twice")], ids=["empty", "a-path", "repeated"])
def test_a_damaged_nuswide_concept_list_is_one_line(tmp_path, concepts, expected):
    root = tmp_path / "nus"
    write_nuswide(root, {"train": 4, "test": 2}, set())
    (root / "ConceptsList" / "Concepts81.txt").write_text(concepts)
    line = _one_error(["prepare", "nuswide", str(root), "--shards", str(tmp_path / "out"), "--no-progress"], root)
    assert expected in line and "Concepts81.txt" in line, line


def _relabel(shard: Path, label: str) -> str:
    """Rewrite the first sample's ``cls`` member of a shard; returns that sample's key."""
    members = []
    with tarfile.open(shard) as tar:
        for info in tar.getmembers():
            members.append((info, tar.extractfile(info).read()))
    first = members[0][0].name.split(".")[0]
    with tarfile.open(shard, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if info.name == f"{first}.cls":
                data = label.encode()
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return first


@pytest.mark.parametrize("label,cache", [("-3", "false"), ("-1", "false"), ("-1", "true")])
def test_a_negative_label_in_a_training_shard_is_one_line_naming_it(tiny_shards, tmp_path, label, cache):
    data = tmp_path / "data"
    shutil.copytree(tiny_shards, data)
    shard = train_shards(data)[0]
    key = _relabel(shard, label)
    line = _one_error(["finetune", "--method", "linear", "--recipe", "quick", *TINY, "--set", "train.epochs=1",
                       "--set", f"train.feature_cache={cache}", "--data", str(data), "--out", str(tmp_path / "run")], data)
    assert f"label {label} of sample {key} in {shard}" in line and "outside the 3 classes" in line, line


@pytest.mark.parametrize("setting,expected", [
    (["--method", "lora", "--set", "method.r=1000000"], "method.r=1e+06 would add about"),
    (["--method", "peft", "--set", "method.peft_config={r: 8, target_modules: [[qkv]]}"], "peft_config.target_modules"),
], ids=["huge-rank", "nested-garbage"])
def test_peft_options_are_checked_before_anything_is_allocated(tiny_shards, tmp_path, setting, expected):
    line = _one_error(["finetune", *setting, "--recipe", "quick", *TINY, "--data", str(tiny_shards),
                       "--out", str(tmp_path / "run")], tiny_shards)
    assert expected in line, line
    run = tmp_path / "run"
    assert not (run / "trainable.safetensors").exists() and not (run / "summary.json").exists()
    assert not (run / "run.json").exists() or json.loads((run / "run.json").read_text())["state"] == "failed"
