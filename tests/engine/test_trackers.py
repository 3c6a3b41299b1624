"""``--set train.log_with=tensorboard``: Accelerate's trackers get every epoch's metrics.jsonl values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.engine.conftest import TINY, image_shards  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--method", "arc", "--recipe", "quick", *TINY, "--set", "method.dim=4", "--set", "train.max_steps_per_epoch=2"]


def test_tensorboard_event_file_has_every_epoch(image_shards, tmp_path):  # noqa: F811
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed (pip install 'adaptcli[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["finetune", *ARGS, "--data", str(image_shards), "--out", str(run),
                                      "--set", "train.epochs=3", "--set", "train.log_with=tensorboard"])
    assert result.exit_code == 0, result.output
    events = list((run / "adaptcli").glob("events.out.tfevents.*"))
    assert len(events) == 1
    scalars = EventAccumulator(str(events[0])).Reload()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "train"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    for tag, key in {"train/loss": "loss", "train/lr": "lr", "val/top1": "val_top1", "val/top5": "val_top5",
                     "train/samples_per_second": "samples_per_second", "system/peak_memory_mb": "peak_memory_mb"}.items():
        logged = scalars.Scalars(tag)
        assert [e.step for e in logged] == [1, 2, 3], tag
        assert [e.value for e in logged] == pytest.approx([r[key] for r in epochs], rel=1e-6), tag
    assert all(r["samples_per_second"] > 0 and r["peak_memory_mb"] > 0 for r in epochs)

    hparams = yaml.safe_load(next(run.glob("adaptcli/*/hparams.yml")).read_text())
    assert hparams["train/log_with"] == "tensorboard" and hparams["method/name"] == "arc"
    assert hparams["train/max_steps_per_epoch"] == 2 and hparams["model/img_size"] == 32


def test_unknown_tracker_is_one_line_before_the_run_folder_exists(image_shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["finetune", *ARGS, "--data", str(image_shards), "--out", str(run),
                                      "--set", "train.log_with=tensorbord"])
    assert result.exit_code == 2
    assert "unknown tracker 'tensorbord'" in result.output and "tensorboard" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not run.exists()


def test_missing_tracker_package_is_one_line(image_shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    argv = ["adaptcli", "finetune", *ARGS, "--data", str(image_shards), "--out", str(run),
            "--set", "train.log_with=tensorboard"]
    code = ("import sys; sys.modules['tensorboard'] = sys.modules['tensorboardX'] = None; "
            f"from adaptcli.cli import main; sys.argv = {argv!r}; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr[-2000:]
    assert (done.stdout + done.stderr).strip().splitlines() == [
        "error: train.log_with=tensorboard needs the tensorboard package: pip install 'adaptcli[tensorboard]'"]
    assert not run.exists()
