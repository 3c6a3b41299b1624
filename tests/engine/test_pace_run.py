"""A real ``finetune`` with PACE on prepared image shards: it trains, and a killed run resumes exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from adaptcli.io import read_safetensors

from tests.engine.conftest import TINY

PACE = ["--set", "train.pace_lambda=1", "--set", "train.pace_sigma=1.2"]
#: The killed run is killed when epoch 1's checkpoint appears: the epochs after it are the window in which
#: the kill must land. With 2 epochs that was 0.34 s from the checkpoint to summary.json (2 shared CPU
#: cores), and a poller 1 s late killed a finished run; 20 epochs leave about 3 s.
EPOCHS = 20


def finetune(data: Path, out: Path, *extra: str, resume: bool = False) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "adaptcli", "finetune", "--method", "lora", "--recipe", "quick", "--data", str(data),
            "--out", str(out), *TINY, "--set", f"train.epochs={EPOCHS}", "--set", "model.drop_path=0.2", *extra]
    return subprocess.run(args + (["--resume"] if resume else []), capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def weights(run: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(run / "trainable.safetensors")[0]


def test_a_killed_pace_run_resumes_to_the_uninterrupted_weights_and_pace_changes_training(image_shards, tmp_path):
    for name, extra in (("a", PACE), ("plain", [])):
        result = finetune(image_shards, tmp_path / name, *extra)
        assert result.returncode == 0, result.stderr[-2000:]
    checkpoints = tmp_path / "b" / "checkpoints"
    args = [sys.executable, "-m", "adaptcli", "finetune", "--method", "lora", "--recipe", "quick", "--data",
            str(image_shards), "--out", str(tmp_path / "b"), *TINY, "--set", f"train.epochs={EPOCHS}",
            "--set", "model.drop_path=0.2", *PACE]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (checkpoints / "epoch-0001").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.kill()
    assert process.wait() == -9, "the run ended before the kill: it resumed nothing"
    assert [p.name for p in checkpoints.iterdir() if not p.name.startswith(".")] == ["epoch-0001"]
    resumed = finetune(image_shards, tmp_path / "b", *PACE, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout
    a, b, plain = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "plain")
    for key in a:  # the noise a resumed run draws is the noise the uninterrupted one drew
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0)
    assert any(not torch.allclose(a[key], plain[key], atol=1e-4) for key in a)  # PACE was on
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("a", "plain")]
    assert summaries[0]["trainable_params"] == summaries[1]["trainable_params"]  # and added no parameters


def test_dry_run_refuses_pace_where_the_run_would_find_no_adapter_output(image_shards, tmp_path):
    """DoRA with qkv=split has no module whose output is the update: the dry run says so, as the run does."""
    out = tmp_path / "run"
    for dry in (["--dry-run"], []):
        result = finetune(image_shards, out, "--method", "dora", "--set", "method.qkv=split",
                          "--set", "train.pace_sigma=1", *dry)
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "DoRA with method.qkv=split" in lines[0] and "qkv=fused" in lines[0], result.stderr
        assert not out.exists()
