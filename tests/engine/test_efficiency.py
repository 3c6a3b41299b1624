"""Every run's summary.json and finetune's last lines report memory and speed."""

from __future__ import annotations

import json
import resource

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.engine.conftest import TINY


def test_summary_has_efficiency_fields_that_make_sense(image_shards, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["finetune", "--method", "adaptformer", "--recipe", "quick", "--data",
                                      str(image_shards), "--out", str(run), *TINY, "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    # 48 training images, batch 8: 6 steps per epoch, 2 epochs.
    assert summary["steps"] == 12
    assert summary["peak_memory_kind"] == "cpu_peak_rss"
    own_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process trained the run
    assert 50 < summary["peak_memory_mb"] <= own_peak_mib + 1
    assert summary["train_seconds"] > 0
    assert 0 < summary["seconds_per_step"] * summary["steps"] <= summary["train_seconds"]
    # 96 samples seen; train_seconds is rounded to 0.01 s, hence the tolerance.
    assert summary["samples_per_second"] * summary["train_seconds"] == pytest.approx(96, rel=0.06)
    text = " ".join(result.output.split())
    assert f"peak memory {summary['peak_memory_mb']:,.1f} MiB (CPU peak resident)" in text
    assert f"{summary['seconds_per_step']:.4f} s per optimiser step" in text
