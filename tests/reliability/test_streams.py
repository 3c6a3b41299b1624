"""Bounded streams: training over shards that yield nothing is an error, never a loop; eval names a
damaged shard or, with --skip-damaged, evaluates the rest and records what is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.reliability.conftest import TINY, copy_tree, message_lines, train_shards, truncate_in_first_sample

runner = CliRunner()


def _finetune(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(data),
                               "--out", str(out), *TINY, "--set", "train.epochs=1", "--set", "train.feature_cache=false",
                               *extra])


@pytest.mark.parametrize("damage", ["missing", "truncated", "truncated-workers"])
def test_training_on_unreadable_shards_stops_within_a_minute(tiny_shards, tmp_path, damage):
    data = copy_tree(tiny_shards, tmp_path / "data")
    for shard in train_shards(data):
        if damage == "missing":
            shard.unlink()
        else:
            truncate_in_first_sample(shard)
    extra = ["--set", "data.workers=2"] if damage == "truncated-workers" else []
    start = time.monotonic()
    result = _finetune(data, tmp_path / "run", *extra)
    assert time.monotonic() - start < 60
    assert result.exit_code == 2, result.output
    lines = message_lines(result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    if damage == "missing":
        assert "training shards" in lines[0] and "are missing" in lines[0] and "train-000000.tar" in lines[0]
    else:
        assert "no training sample could be read" in lines[0] and "truncated member" in lines[0]


def test_a_process_whose_training_failed_with_loader_workers_exits(tiny_shards, tmp_path):
    """The workers ignore SIGTERM, so a failed run must stop them itself: left to Python's exit handler
    (SIGTERM, then wait) the process printed its one line and never exited."""
    data = copy_tree(tiny_shards, tmp_path / "data")
    for shard in train_shards(data):
        truncate_in_first_sample(shard)
    command = [sys.executable, "-m", "adaptcli", "finetune", "--method", "linear", "--recipe", "quick",
               "--data", str(data), "--out", str(tmp_path / "run"), *TINY, "--set", "train.epochs=1",
               "--set", "train.feature_cache=false", "--set", "data.workers=2"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("adaptcli finetune did not exit within 90 s of a failed run with 2 loader workers")
    assert done.returncode == 2, done.stderr
    assert "no training sample could be read" in done.stderr and "Traceback" not in done.stderr


def test_one_damaged_training_shard_is_counted_in_the_summary(tiny_shards, tmp_path):
    data = copy_tree(tiny_shards, tmp_path / "data")
    truncate_in_first_sample(train_shards(data)[0])
    result = _finetune(data, tmp_path / "run", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(summary["damaged_shards"]) == ["train-000000.tar"]


def test_eval_names_a_damaged_shard_or_skips_it(tiny_shards, tmp_path):
    run = tmp_path / "run"
    assert _finetune(tiny_shards, run).exit_code == 0
    data = copy_tree(tiny_shards, tmp_path / "data")
    shard = sorted(data.glob("test-*.tar"))[0]
    truncate_in_first_sample(shard)
    base = ["eval", "--run", str(run), "--data", str(data), "--split", "test"]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2 and len(message_lines(refused.stderr)) == 1, refused.output
    assert f"shard {shard} is damaged (truncated member)" in refused.stderr and "--skip-damaged" in refused.stderr
    skipped = runner.invoke(app, [*base, "--skip-damaged", "--json"])
    assert skipped.exit_code == 0, skipped.output
    report = json.loads((run / "eval.json").read_text())
    manifest = json.loads((data / "dataset.json").read_text())
    assert report["missing_samples"] == 6 and report["samples"] == manifest["splits"]["test"]["samples"] - 6
    assert report["damaged_shards"] == {shard.name: "truncated member"}


def test_a_multi_hot_label_outside_the_classes_is_one_line():
    """Multi-label shards (issue 14) get the same check as single-label ones: the manifest and the
    shards disagree, so no sample can be trusted (not skipped as a damaged sample, not an IndexError)."""
    from adaptcli.data.stream.samples import multi_hot_of
    from adaptcli.errors import AdaptError

    sample = {"__key__": "a/1", "__url__": "train-000000.tar", "labels": b"[0, 3]"}
    assert multi_hot_of(sample, 4).tolist() == [1.0, 0.0, 0.0, 1.0]
    for labels in (b"[0, 4]", b"[-1]"):
        with pytest.raises(AdaptError, match=r"label (4|-1) of sample a/1 in train-000000.tar is outside the 3 classes"):
            multi_hot_of({**sample, "labels": labels}, 3)
