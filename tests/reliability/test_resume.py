"""Resume at any step (SIGKILL from outside, SIGTERM from a scheduler) and the run lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.reliability.conftest import TINY

#: 24 training images, batch 4: 6 optimiser steps per epoch, a checkpoint every 2 steps. The kills land
#: at step 8 (inside the second epoch); the 10 epochs after it are the window (2 epochs could end first).
COMMON = ["finetune", "--method", "arc", "--recipe", "quick", *TINY, "--set", "train.epochs=12",
          "--set", "train.batch_size=4", "--set", "method.dim=4", "--set", "train.save_every_steps=2",
          "--set", "train.keep_checkpoints=3"]


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "adaptcli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert path.exists(), f"{path} never appeared (exit {process.poll()})"


def _tensors(run: Path) -> dict[str, torch.Tensor]:
    from adaptcli.io import read_safetensors

    return read_safetensors(run / "trainable.safetensors")[0]


def _assert_same(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert (ta[key] - tb[key]).abs().max().item() <= 1e-6, key


@pytest.fixture(scope="module")
def straight(tiny_shards, tmp_path_factory) -> Path:
    """The uninterrupted run every resumed one must equal."""
    out = tmp_path_factory.mktemp("straight") / "run"
    process = _cli([*COMMON, "--data", str(tiny_shards), "--out", str(out)])
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    return out


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tiny_shards, straight, tmp_path):
    out = tmp_path / "run"
    args = [*COMMON, "--data", str(tiny_shards), "--out", str(out)]
    process = _cli(args)
    _wait_for(out / "checkpoints" / "epoch-0001-step-00000008", process)  # inside the second epoch
    process.kill()
    assert process.wait() == -signal.SIGKILL
    names = sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith("."))
    assert "epoch-0002" not in names and names[-1].startswith("epoch-0001-step-"), names
    assert json.loads((out / "run.json").read_text())["state"] == "running"  # killed: no word from it

    resumed = _cli([*args, "--resume"])
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    assert "resumed from" in stdout and "batch " in stdout and "took over the stale lock" in stderr
    _assert_same(straight, out)
    assert json.loads((out / "run.json").read_text())["state"] == "finished"
    assert not (out / "run.lock").exists()


def test_sigterm_saves_marks_interrupted_exits_143_and_resumes_exactly(tiny_shards, straight, tmp_path):
    out = tmp_path / "run"
    args = [*COMMON, "--data", str(tiny_shards), "--out", str(out)]
    process = _cli(args)
    _wait_for(out / "checkpoints" / "epoch-0000-step-00000002", process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-2000:]
    assert "SIGTERM" in stderr and "--resume" in stderr
    info = json.loads((out / "run.json").read_text())
    assert info["state"] == "interrupted" and info["step"] >= 2 and info["reason"] == "SIGTERM"
    assert (out / "checkpoints" / info["checkpoint"]).is_dir() and not (out / "run.lock").exists()

    from typer.testing import CliRunner

    from adaptcli.cli import app

    early = CliRunner().invoke(app, ["eval", "--run", str(out), "--split", "test"])
    assert early.exit_code == 0, early.output
    warning = [line for line in early.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "(interrupted)" in warning[0] and f"step {info['step']}" in warning[0]

    saved = json.loads((out / "checkpoints" / info["checkpoint"] / "state.json").read_text())
    assert saved["train_seconds"] > 0 and saved["step"] == info["step"]

    started = time.monotonic()
    resumed = _cli([*args, "--resume"])
    _, stderr = resumed.communicate(timeout=600)
    second_wall = time.monotonic() - started
    assert resumed.returncode == 0, stderr[-2000:]
    _assert_same(straight, out)
    # The train time is both parts' (0.01: summary.json rounds), not the resumed part's nor the pause between.
    second_epochs = sum(m["seconds"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                        if m["event"] == "train" and m["epoch"] > saved["epoch"])
    seconds = json.loads((out / "summary.json").read_text())["train_seconds"]
    assert saved["train_seconds"] + second_epochs - 0.01 <= seconds <= saved["train_seconds"] + second_wall + 0.01
    report = CliRunner().invoke(app, ["report", str(out), "--format", "json"])
    assert report.exit_code == 0 and json.loads(report.stdout)["runs"][0]["train_seconds"] == seconds


def test_resume_with_no_checkpoint_starts_from_step_0(tiny_shards, tmp_path):
    from typer.testing import CliRunner

    from adaptcli.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", *TINY,
                                      "--set", "train.epochs=1", "--data", str(tiny_shards), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "has no checkpoint yet; training starts from step 0" in result.stderr
    assert json.loads((out / "run.json").read_text())["state"] == "finished"


def test_two_finetunes_on_one_out_only_one_trains(tiny_shards, straight, tmp_path):
    out = tmp_path / "run"
    first = _cli([*COMMON, "--data", str(tiny_shards), "--out", str(out)])
    _wait_for(out / "run.lock", first)
    first.send_signal(signal.SIGSTOP)  # hold it mid-run, whatever the machine's speed
    try:
        second = subprocess.run([sys.executable, "-m", "adaptcli", "finetune", "--method", "adaptformer", "--recipe",
                                 "quick", *TINY, "--data", str(tiny_shards), "--out", str(out)],
                                capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"is in use by pid {first.pid} on " in errors[0]
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-2000:]
    config = (out / "config.yaml").read_text()
    assert "name: arc" in config and "adaptformer" not in config
    assert _tensors(out).keys() == _tensors(straight).keys()  # arc's tensors only, none of adaptformer's
    assert json.loads((out / "run.json").read_text())["state"] == "finished" and not (out / "run.lock").exists()


def test_feature_cache_run_resumes_exactly_mid_epoch(tiny_shards, tmp_path):
    """Linear probing replays cached features: the resumed replay must skip the same batches."""
    args = ["finetune", "--method", "linear", "--recipe", "quick", *TINY, "--set", "train.epochs=30",
            "--set", "train.batch_size=4", "--set", "train.save_every_steps=2", "--set", "data.augment=resize",
            "--set", "data.flip=false", "--set", "train.eval_every=100", "--data", str(tiny_shards)]
    straight = _cli([*args, "--out", str(tmp_path / "a")])
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-2000:]
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["feature_cache"] is True

    out = tmp_path / "b"
    process = _cli([*args, "--out", str(out)])
    _wait_for(out / "checkpoints" / "epoch-0001-step-00000010", process)
    process.kill()
    assert process.wait() == -signal.SIGKILL
    assert json.loads((out / "run.json").read_text())["state"] == "running"  # killed mid-run, not once finished
    assert not (out / "checkpoints" / "epoch-0030").exists()
    resumed = _cli([*args, "--out", str(out), "--resume"])
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    _assert_same(tmp_path / "a", out)


def test_resume_with_loader_workers_equals_an_uninterrupted_run(tiny_shards, tmp_path):
    """With ``data.workers`` > 0 the next epoch's workers start early (batches.EpochStreams); a run killed
    inside the second epoch (whose stream was prefetched) resumes onto a freshly built one, and both
    must train on the same batches in the same random state as the uninterrupted run."""
    args = [*COMMON, "--set", "data.workers=2", "--data", str(tiny_shards)]
    straight = _cli([*args, "--out", str(tmp_path / "a")])
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-2000:]

    out = tmp_path / "b"
    process = _cli([*args, "--out", str(out)])
    _wait_for(out / "checkpoints" / "epoch-0001-step-00000008", process)
    process.kill()
    assert process.wait() == -signal.SIGKILL, "the run ended before the kill: it resumed nothing"
    assert json.loads((out / "run.json").read_text())["state"] == "running"  # killed mid-run, not once finished
    resumed = _cli([*args, "--out", str(out), "--resume"])
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    _assert_same(tmp_path / "a", out)


def test_sigterm_to_the_process_group_with_workers_checkpoints_and_resumes_exactly(tiny_shards, tmp_path):
    """Slurm signals the whole process group on preemption: the loader workers get SIGTERM too. They
    ignore it; the trainer finishes the step, saves, exits 143, and the resumed run equals a straight one."""
    args = [*COMMON, "--set", "data.workers=2", "--data", str(tiny_shards)]
    straight = _cli([*args, "--out", str(tmp_path / "a")])
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-2000:]

    out = tmp_path / "b"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "adaptcli", *args, "--out", str(out)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(out / "checkpoints" / "epoch-0001-step-00000008", process)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr and "SIGTERM" in stderr and "--resume" in stderr
    info = json.loads((out / "run.json").read_text())
    assert info["state"] == "interrupted" and info["reason"] == "SIGTERM"
    resumed = _cli([*args, "--out", str(out), "--resume"])
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    _assert_same(tmp_path / "a", out)
