"""``eval`` on a split without labels (SSv2's test split, ids only) is refused before any work: one line
naming the split and the fix, exit 2, nothing written; also for a ``dataset.json`` written before
``labelled`` was recorded (decided from the split's first sample)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.synthetic import moving_square, write_ssv2_layout
from tests.engine.conftest import TINY, prepare

runner = CliRunner()


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ssv2_run(tmp_path_factory) -> tuple[Path, Path]:
    """SSv2 as downloaded (train, validation, and test.json with ids only), prepared; a 1-epoch linear run."""
    root = tmp_path_factory.mktemp("ssv2-unlabelled")
    templates = {"left": "Pushing [something] from right to left", "right": "Pushing [something] from left to right"}
    clips, splits = [], {"train": [], "validation": [], "test": []}
    for i in range(12):
        direction = "left" if i % 2 else "right"
        clip_id = str(2000 + i)
        clips.append((clip_id, templates[direction], ["box"], moving_square(direction, 8, 32, 32, seed=i)))
        splits["train" if i < 6 else "validation" if i < 9 else "test"].append(clip_id)
    write_ssv2_layout(root / "src", clips, splits)
    shards = root / "shards"
    prepare(["ssv2", str(root / "src"), "--shards", str(shards), "--samples-per-shard", "2"])
    run = root / "run"
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(shards),
                                 "--out", str(run), *TINY, "--model", "video_vit_test", "--set", "model.num_frames=4",
                                 "--set", "train.epochs=1", "--set", "train.warmup_epochs=0",
                                 "--set", "train.batch_size=2", "--set", "eval.views=1x1"])
    assert result.exit_code == 0, result.output
    return shards, run


def _refused(args: list[str], *owned: Path) -> str:
    before = {folder: _tree_digest(folder) for folder in owned}
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for folder, digest in before.items():
        assert _tree_digest(folder) == digest, f"{folder} changed"
    return lines[0]


def test_prepare_records_which_splits_are_labelled(ssv2_run):
    shards, _ = ssv2_run
    splits = json.loads((shards / "dataset.json").read_text())["splits"]
    assert {name: info["labelled"] for name, info in splits.items()} == {
        "train": True, "validation": True, "test": False}


def test_eval_on_the_unlabelled_test_split_is_refused_before_any_work(ssv2_run, tmp_path):
    shards, run = ssv2_run
    scores = tmp_path / "scores.safetensors"
    line = _refused(["eval", "--run", str(run), "--split", "test", "--scores", str(scores)], run, shards)
    assert "split 'test'" in line and "no labels" in line, line
    assert "--split validation" in line and "adaptcli predict" in line, line
    assert not scores.exists() and not (run / "eval.json").exists()


def test_refused_before_the_weights_are_read(ssv2_run, tmp_path):
    """Before any work: a run whose weights are gone still gets the labels line, not a weights error."""
    shards, run = ssv2_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    weights = [p for p in copy.rglob("*.safetensors")]
    assert weights
    for path in weights:
        path.unlink()
    line = _refused(["eval", "--run", str(copy), "--split", "test"], copy, shards)
    assert "split 'test'" in line and "no labels" in line, line


def test_an_old_dataset_json_is_decided_by_its_first_sample(ssv2_run, tmp_path):
    """A dataset.json written before ``labelled`` existed still reads; the test split is refused from its
    first sample, and the validation split still evaluates."""
    shards, run = ssv2_run
    old = tmp_path / "old-shards"
    shutil.copytree(shards, old)
    manifest = json.loads((old / "dataset.json").read_text())
    for info in manifest["splits"].values():
        del info["labelled"]
    (old / "dataset.json").write_text(json.dumps(manifest, indent=1) + "\n")
    line = _refused(["eval", "--run", str(run), "--data", str(old), "--split", "test"], run, old)
    assert "split 'test'" in line and "no labels" in line and "--split validation" in line, line
    result = runner.invoke(app, ["eval", "--run", str(run), "--data", str(old), "--split", "validation"])
    assert result.exit_code == 0, result.output
    assert "validation: top-1" in result.output


def test_an_export_on_the_unlabelled_split_is_refused_up_front(ssv2_run, tmp_path):
    shards, run = ssv2_run
    model = tmp_path / "model.safetensors"
    exported = runner.invoke(app, ["export", "--run", str(run), "--full", "--out", str(model)])
    assert exported.exit_code == 0, exported.output
    line = _refused(["eval", "--export", str(model), "--data", str(shards), "--split", "test"], shards)
    assert "split 'test'" in line and "no labels" in line and "--split validation" in line, line
    assert "adaptcli predict" in line, line  # the up-front check's line, not the one after scoring
