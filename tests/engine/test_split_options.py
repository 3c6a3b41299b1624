"""data.train_split, data.test_split and eval's --split go through the split-name table as data.val_split does:
an alias finds the data's split (``training`` is ``train``), a name the data lacks is one line listing its splits,
exit 2, before any work and with nothing left behind."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.engine.conftest import TINY

runner = CliRunner()
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=1"]


def finetune(data: Path, out: Path, *extra: str):
    return runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(data),
                               "--out", str(out), *TINY, *SHORT, *extra])


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("key", ["train_split", "test_split"])
@pytest.mark.parametrize("name", ["nosuch", "Val200"])
def test_a_split_the_data_lacks_is_one_line_listing_its_splits(image_shards, tmp_path, key, name):
    before = fingerprint(image_shards)
    result = finetune(image_shards, tmp_path / "run", "--set", f"data.{key}={name}")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"data.{key}={name}" in lines[0] and "(it has: test, train, validation)" in lines[0]
    assert f"--set data.{key}" in lines[0]
    assert not (tmp_path / "run").exists() and fingerprint(image_shards) == before


def test_dry_run_refuses_the_same_way(image_shards, tmp_path):
    result = finetune(image_shards, tmp_path / "run", "--set", "data.test_split=nosuch", "--dry-run")
    assert result.exit_code == 2 and "has no split 'nosuch'" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sets, train, test", [
    (["data.train_split=training"], "train", "test"),
    (["data.train_split=TRAIN", "data.test_split=testing"], "train", "test"),
])
def test_the_tables_aliases_find_the_datas_splits_and_the_run_records_them(image_shards, tmp_path, sets, train, test):
    out = tmp_path / "run"
    result = finetune(image_shards, out, *[arg for key in sets for arg in ("--set", key)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert (data["train_split"], data["test_split"]) == (train, test)
    # resuming with the same --set values is the same configuration
    again = finetune(image_shards, out, *[arg for key in sets for arg in ("--set", key)], "--resume")
    assert again.exit_code == 0 and "is finished" in again.output, again.output


def test_eval_split_the_data_lacks_is_refused_before_the_weights_are_read(image_shards, tmp_path):
    out = tmp_path / "run"
    assert finetune(image_shards, out).exit_code == 0
    (out / "eval.json").unlink(missing_ok=True)
    weights = tmp_path / "moved"
    weights.mkdir()
    for name in ("best.safetensors", "trainable.safetensors"):
        shutil.move(out / name, weights / name)  # a check after loading would fail on these first
    before = fingerprint(out)
    result = runner.invoke(app, ["eval", "--run", str(out), "--split", "nosuch"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "split 'nosuch'" in lines[0] and "(has test, train, validation)" in lines[0], lines
    assert fingerprint(out) == before and not (out / "eval.json").exists()


def test_eval_split_alias_finds_the_datas_split(image_shards, tmp_path):
    out = tmp_path / "run"
    assert finetune(image_shards, out).exit_code == 0
    result = runner.invoke(app, ["eval", "--run", str(out), "--split", "testing"])
    assert result.exit_code == 0, result.output
    assert "test: top-1" in result.output
