"""A video ViT run trained with layer decay before fc_norm moved to the head's group (commit 4344ee5: VideoMAE's
get_num_layer_for_vit) resumes with the parameter groups it was trained with, and equals the same run left
uninterrupted; a checkpoint whose groups no rule builds is a one-line error naming the fix."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.engine.conftest import TINY

ARGS = ["finetune", "--method", "full", "--recipe", "quick", "--model", "video_vit_test", *TINY,
        "--set", "model.num_frames=4", "--set", "train.batch_size=4", "--set", "train.epochs=2",
        "--set", "train.layer_decay=0.75", "--set", "train.keep_checkpoints=3"]


def group_matcher_before_4344ee5(self, coarse: bool = False) -> dict[str, Any]:
    """adaptcli's video ViT grouping before commit 4344ee5 (``git show 4344ee5 -- adaptcli/models/video_vit.py``):
    fc_norm after the last block, which timm's grouping puts in that block's layer."""
    return dict(stem=r"^patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^fc_norm", (99999,))])


def invoke(data: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, [*ARGS, "--data", str(data), "--out", str(out), *extra])


def stop_after_the_first_epoch(monkeypatch) -> None:
    """A real SIGTERM once the first epoch's checkpoint is saved: the trainer stops there as under a scheduler."""
    from adaptcli.engine.trainer import Trainer

    save = Trainer.save_checkpoint

    def save_then_signal(self, mid_epoch: bool = False):
        saved = save(self, mid_epoch)
        if self.state.epoch == 1 and not mid_epoch:
            os.kill(os.getpid(), signal.SIGTERM)
        return saved

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_signal)


def tensors(run: Path) -> dict[str, torch.Tensor]:
    from adaptcli.io import read_safetensors

    return read_safetensors(run / "trainable.safetensors")[0]


@pytest.fixture(scope="module")
def straight_before(video_shards, tmp_path_factory) -> Path:
    """The same run trained uninterrupted by the code before 4344ee5."""
    from adaptcli.models.video_vit import VideoVisionTransformer

    out = tmp_path_factory.mktemp("before") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VideoVisionTransformer, "group_matcher", group_matcher_before_4344ee5)
        result = invoke(video_shards, out)
    assert result.exit_code == 0, result.output
    return out


def interrupted_before(video_shards: Path, out: Path) -> None:
    from adaptcli.models.video_vit import VideoVisionTransformer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VideoVisionTransformer, "group_matcher", group_matcher_before_4344ee5)
        stop_after_the_first_epoch(patch)
        result = invoke(video_shards, out)
    assert result.exit_code == 143, result.output
    assert (out / "checkpoints" / "epoch-0001").is_dir()


def test_an_old_layer_decay_run_resumes_with_its_own_groups_and_equals_the_straight_run(video_shards, straight_before,
                                                                                       tmp_path):
    out = tmp_path / "run"
    interrupted_before(video_shards, out)
    resumed = invoke(video_shards, out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "fc_norm" in resumed.output  # says which groups it kept
    expected, got = tensors(straight_before), tensors(out)
    assert expected.keys() == got.keys()
    for key in expected:
        assert (expected[key] - got[key]).abs().max().item() <= 1e-6, key


def test_a_checkpoint_whose_groups_no_rule_builds_is_one_line_naming_the_fix(video_shards, tmp_path, monkeypatch):
    """Without the earlier grouping on record (as for a grouping change nobody listed), the same old run is
    refused in one line before any training: its files unchanged but run.json, which records the refusal and
    stays resumable."""
    out = tmp_path / "run"
    interrupted_before(video_shards, out)
    checkpoint = json.loads((out / "run.json").read_text())["checkpoint"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name not in ("run.lock", "run.json")}
    monkeypatch.setattr("adaptcli.engine.optim.EARLIER_GROUPINGS", [])
    result = invoke(video_shards, out, "--resume")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "parameter groups" in lines[0] and "--overwrite" in lines[0], lines
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name not in ("run.lock", "run.json")}
    assert after == before, [p.name for p in set(after) | set(before) if after.get(p) != before.get(p)]
    info = json.loads((out / "run.json").read_text())
    assert info["state"] == "interrupted" and info["checkpoint"] == checkpoint and "parameter groups" in info["reason"]
