"""A run whose feature cache is on disk, killed (SIGKILL: nothing cleans up) and resumed: the resumed run
caches again, deletes the killed run's files first (never reading them) and trains what an uninterrupted
in-memory run trains."""

from __future__ import annotations

import json

import torch

from tests.reliability.conftest import TINY
from tests.reliability.test_resume import _cli, _tensors, _wait_for

ARGS = ["finetune", "--method", "attentive_probe", "--recipe", "quick", *TINY, "--set", "train.epochs=30",
        "--set", "train.batch_size=4", "--set", "train.save_every_steps=2", "--set", "train.eval_every=100",
        "--set", "method.heads=4"]


def test_a_killed_disk_cache_run_resumes_exactly_and_its_leftovers_go(tiny_shards, tmp_path):
    args = [*ARGS, "--data", str(tiny_shards)]
    straight = _cli([*args, "--out", str(tmp_path / "memory")])
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-2000:]

    out = tmp_path / "disk"
    on_disk = [*args, "--set", "train.feature_cache_memory_gb=0", "--out", str(out)]
    process = _cli(on_disk)
    _wait_for(out / "checkpoints" / "epoch-0001-step-00000010", process)  # the pass ended before any step
    process.kill()
    assert process.wait() == -9  # killed, not finished: its 29 remaining epochs are the window
    assert json.loads((out / "run.json").read_text())["state"] == "running"
    cache = out / "feature-cache"
    assert sorted(p.name for p in cache.iterdir()) == ["rank-0.f32"]  # the killed run's complete file
    with open(cache / "rank-0.f32", "r+b") as left:  # were it read again, the run would differ or fail
        left.truncate(left.seek(0, 2) // 2)
    (cache / ".tmp-999999-rank-0.f32").write_bytes(b"half-written")  # a pass killed midway leaves this

    resumed = _cli([*on_disk, "--resume"])
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    assert f"written to {cache} (" in stdout
    assert not cache.exists()
    assert json.loads((out / "summary.json").read_text())["feature_cache"] is True
    memory, disk = _tensors(tmp_path / "memory"), _tensors(out)
    assert memory.keys() == disk.keys() and all(torch.equal(memory[k], disk[k]) for k in memory)
