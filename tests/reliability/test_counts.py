"""Sample counts from a manifest are checked against the shards: a claimed count the shards do not hold
stops training and eval with one line before any work (a note with eval --skip-damaged), however the
manifest was edited (the count alone, the per-shard record too, or an older manifest without it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from adaptcli.data.stream.tar_reader import count_samples, iter_samples, member_names
from tests.reliability.conftest import TINY, checksums, copy_tree, message_lines

TIMEOUT = 180  # an epoch that never ends fails the case instead of hanging the suite


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adaptcli", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _one_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in message_lines(result.stderr) if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.stderr, lines
    return lines[0]


def _edited(tiny_shards: Path, tmp_path: Path, split: str, edit: Callable[[dict], None]) -> Path:
    data = copy_tree(tiny_shards, tmp_path / "data")
    manifest = json.loads((data / "dataset.json").read_text())
    edit(manifest["splits"][split])
    (data / "dataset.json").write_text(json.dumps(manifest))
    return data


def _claim(samples: int, record: bool | None = None) -> Callable[[dict], None]:
    """Set the split's count; ``record``: True scales the per-shard record to match, False drops it."""
    def edit(info: dict) -> None:
        info["samples"] = samples
        if record is False:
            info.pop("shard_samples")
        elif record:
            info["shard_samples"] = [samples // len(info["shards"])] * len(info["shards"])
            info["shard_samples"][0] += samples - sum(info["shard_samples"])
    return edit


def _finetune(data: Path, out: Path) -> subprocess.CompletedProcess:
    return _cli("finetune", "--method", "linear", "--recipe", "quick", *TINY, "--set", "train.epochs=1",
                "--data", str(data), "--out", str(out))


def test_prepare_records_every_shards_count(tiny_shards):
    manifest = json.loads((tiny_shards / "dataset.json").read_text())
    for info in manifest["splits"].values():
        counts = [count_samples(tiny_shards / name) for name in info["shards"]]
        assert info["shard_samples"] == counts and sum(counts) == info["samples"]


def test_counting_headers_agrees_with_reading_samples(tiny_shards):
    for shard in sorted(tiny_shards.glob("*.tar")):
        assert count_samples(shard) == len(list(iter_samples(shard)))
        assert len(list(member_names(shard))) >= count_samples(shard) > 0


@pytest.mark.parametrize("samples,record", [(10**15, None), (1000, None), (1000, False), (10**15, True)],
                         ids=["endless-count", "count-only", "older-manifest", "count-and-record"])
def test_finetune_refuses_a_count_the_shards_do_not_hold(tiny_shards, tmp_path, samples, record):
    data = _edited(tiny_shards, tmp_path, "train", _claim(samples, record))
    before = checksums(data)
    line = _one_error(_finetune(data, tmp_path / "run"))
    assert f"has {samples:,} samples but its shards hold 24" in line and "prepare the data again" in line
    assert checksums(data) == before and not (tmp_path / "run" / "summary.json").exists()


@pytest.fixture(scope="module")
def trained(tiny_shards, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("counts")
    data = copy_tree(tiny_shards, tmp / "data")
    result = _finetune(data, tmp / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    return data, tmp / "run"


def test_eval_refuses_a_claimed_count_and_notes_it_with_skip_damaged(trained, tmp_path):
    data, run = trained
    manifest_file = data / "dataset.json"
    original = manifest_file.read_text()
    manifest = json.loads(original)
    manifest["splits"]["test"]["samples"] = 1000
    manifest["splits"]["test"].pop("shard_samples")
    manifest_file.write_text(json.dumps(manifest))
    try:
        before = checksums(run)
        line = _one_error(_cli("eval", "--run", str(run), "--split", "test"))
        assert "has 1,000 samples but its shards hold 9" in line
        noted = _cli("eval", "--run", str(run), "--split", "test", "--skip-damaged", "--json")
        assert noted.returncode == 0, noted.stderr[-2000:]
        assert json.loads(noted.stdout)["missing_samples"] == 991
        after = checksums(run)
        assert all(after[name] == digest for name, digest in before.items() if not name.endswith("eval.json"))
    finally:
        manifest_file.write_text(original)
