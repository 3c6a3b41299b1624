"""The feature cache on disk: when the tokens exceed the memory share they go to a float32 file per rank
that adaptcli creates, reads back per batch and deletes when training ends (engine.feature_store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptcli.cli import app
from adaptcli.engine import feature_store, features
from adaptcli.io import read_safetensors
from tests.engine.conftest import TINY
from tests.engine.test_finetune import runner

PROBE = ["finetune", "--method", "attentive_probe", "--recipe", "quick", *TINY, "--set", "train.epochs=2",
         "--set", "method.heads=4", "--set", "train.lr=0.003"]
ON_DISK = ["--set", "train.feature_cache_memory_gb=0"]


def probe(data: Path, out: Path, *extra: str, code: int = 0) -> str:
    result = runner.invoke(app, [*PROBE, "--data", str(data), "--out", str(out), *extra])
    assert result.exit_code == code, result.output
    return result.output


def weights(run: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(run / "trainable.safetensors")[0]


def token_bytes(data: Path) -> int:
    samples = json.loads((data / "dataset.json").read_text())["splits"]["train"]["samples"]
    return 4 * samples * (4 + 1) * 64  # float32: 4 patch tokens (16 px patches) and the class token, width 64


@pytest.fixture
def cache_files(monkeypatch) -> list[tuple[Path, list[str], tuple[int, ...]]]:
    """(folder, its listing, the file's shape) each time a disk cache is completed: the file existed."""
    seen = []
    finish = feature_store.DiskSink.finish

    def spy(self):
        done = finish(self)
        seen.append((self.folder, sorted(p.name for p in self.folder.iterdir()), tuple(done.shape)))
        return done

    monkeypatch.setattr(feature_store.DiskSink, "finish", spy)
    return seen


def test_a_run_from_the_disk_cache_trains_exactly_the_in_memory_run(image_shards, tmp_path, cache_files):
    probe(image_shards, tmp_path / "memory")
    output = probe(image_shards, tmp_path / "disk", *ON_DISK)
    folder = tmp_path / "disk" / "feature-cache"
    size = token_bytes(image_shards)
    line = (f"feature cache: {size / 1e9:.2f} GB of tokens for the training split exceeds "
            f"train.feature_cache_memory_gb (0.00 GB); written to {folder} (")
    assert line in output and "read back per batch, deleted when training ends" in output
    # said before the pass: the precision note is printed when train() starts, before it caches
    assert output.index(line) < output.index("note: train.precision=auto")
    assert cache_files == [(folder, ["rank-0.f32"], (size // (4 * 5 * 64), 5, 64))]  # the size said is the file's
    memory, disk = weights(tmp_path / "memory"), weights(tmp_path / "disk")
    assert memory.keys() == disk.keys()
    assert all(torch.equal(memory[k], disk[k]) for k in memory)
    assert not folder.exists()
    assert json.loads((tmp_path / "disk" / "summary.json").read_text())["feature_cache"] is True


def test_a_chosen_folder_holds_the_cache_and_nothing_of_the_users_is_touched(image_shards, tmp_path, cache_files):
    chosen = tmp_path / "scratch"
    chosen.mkdir()
    (chosen / "mine.txt").write_text("the user's")
    (chosen / "rank-0.f32").write_text("the user's too")  # a name of adaptcli's, but not in adaptcli's folder
    probe(image_shards, tmp_path / "run", *ON_DISK, "--set", f"train.feature_cache_dir={chosen}")
    ((folder, listing, _),) = cache_files
    assert folder.parent == chosen and folder.name.startswith("adaptcli-feature-cache-") and listing == ["rank-0.f32"]
    assert sorted(p.name for p in chosen.iterdir()) == ["mine.txt", "rank-0.f32"]
    assert (chosen / "mine.txt").read_text() == "the user's" and (chosen / "rank-0.f32").read_text() == "the user's too"
    assert not (tmp_path / "run" / "feature-cache").exists()


def test_a_killed_runs_file_goes_when_the_next_run_keeps_its_cache_in_memory(image_shards, tmp_path):
    chosen, out = tmp_path / "scratch", tmp_path / "run"
    chosen.mkdir()
    left = feature_store.disk_cache_folder(out, str(chosen))  # where a killed run on this --out wrote
    left.mkdir()
    (left / "rank-0.f32").write_bytes(b"a killed run's tokens")
    (left / ".tmp-31337-rank-0.f32").write_bytes(b"half")
    output = probe(image_shards, out, "--set", f"train.feature_cache_dir={chosen}")
    assert "kept in memory" in output
    assert not left.exists() and list(chosen.iterdir()) == []


def test_overwrite_counts_the_cache_folder_as_the_runs_own(image_shards, tmp_path):
    out = tmp_path / "run"
    probe(image_shards, out, "--set", "train.epochs=1")
    (out / "feature-cache").mkdir()
    (out / "feature-cache" / "rank-0.f32").write_bytes(b"a killed run's tokens")
    output = probe(image_shards, out, "--set", "train.epochs=1", "--overwrite")
    assert "adaptcli did not write" not in output and not (out / "feature-cache").exists()


def test_a_missing_chosen_folder_is_refused_before_any_work(image_shards, tmp_path):
    output = probe(image_shards, tmp_path / "run", "--set", f"train.feature_cache_dir={tmp_path / 'nope'}", code=2)
    assert f"train.feature_cache_dir {tmp_path / 'nope'} does not exist; create the folder" in output
    assert not (tmp_path / "run").exists() and not (tmp_path / "nope").exists()


def test_the_file_is_deleted_when_training_fails(image_shards, tmp_path, cache_files, monkeypatch):
    from adaptcli.engine import trainer

    real_step = trainer.timed_step
    calls = []

    def failing_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the second step
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "timed_step", failing_step)
    result = runner.invoke(app, [*PROBE, "--data", str(image_shards), "--out", str(tmp_path / "run"), *ON_DISK])
    assert result.exit_code != 0 and len(calls) == 2
    assert cache_files and cache_files[0][1] == ["rank-0.f32"]  # it was written
    assert not (tmp_path / "run" / "feature-cache").exists()


def test_a_pass_interrupted_midway_leaves_no_half_written_file(image_shards, tmp_path, monkeypatch):
    added = []
    real_add = feature_store.DiskSink.add

    def add_then_fail(self, rows):
        real_add(self, rows)
        added.append(sorted(p.name for p in self.folder.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(feature_store.DiskSink, "add", add_then_fail)
    result = runner.invoke(app, [*PROBE, "--data", str(image_shards), "--out", str(tmp_path / "run"), *ON_DISK])
    assert result.exit_code != 0
    assert len(added) == 1 and added[0][0].startswith(".tmp-") and added[0][0].endswith("-rank-0.f32")
    assert not (tmp_path / "run" / "feature-cache").exists()


def test_without_room_on_disk_the_backbone_runs_at_every_step(image_shards, tmp_path, monkeypatch):
    monkeypatch.setattr(features, "free_bytes", lambda path: 1000)
    output = probe(image_shards, tmp_path / "run", *ON_DISK, "--set", "train.epochs=1")
    folder = tmp_path / "run" / "feature-cache"
    assert (f"feature cache: {token_bytes(image_shards) / 1e9:.2f} GB for the training split exceeds "
            f"train.feature_cache_memory_gb (0.00 GB) and the 0.00 GB free in {folder}; the frozen backbone runs "
            "at every step instead") in output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["feature_cache"] is False and summary["steps"] > 0
    assert not folder.exists()


def test_leftovers_of_a_killed_run_are_deleted_before_the_pass_and_others_kept(tmp_path):
    folder = tmp_path / "feature-cache"
    folder.mkdir()
    for name in ("rank-0.f32", ".tmp-4242-rank-0.f32", "rank-1.f32", ".tmp-77-rank-3.f32", "rank-x.f32", "notes"):
        (folder / name).write_bytes(b"old")
    sink = feature_store.DiskSink(folder, rank=0, world=2)
    # rank 0's own leftovers and those of ranks beyond this run's two; rank 1 cleans its own
    assert sorted(p.name for p in folder.iterdir()) == sorted([sink.staging.name, "notes", "rank-1.f32", "rank-x.f32"])
    rows = torch.arange(24, dtype=torch.float32).reshape(4, 3, 2)
    sink.add(rows[:3])
    sink.add(rows[3:])
    stored = sink.finish()
    assert not sink.staging.exists() and (folder / "rank-0.f32").stat().st_size == rows.numel() * 4
    assert torch.equal(stored[torch.tensor([3, 0, 2])], rows[[3, 0, 2]])
    stored.close()
    assert sorted(p.name for p in folder.iterdir()) == ["notes", "rank-1.f32", "rank-x.f32"]


def test_two_processes_cache_their_shares_on_disk_and_train_what_they_train_in_memory(image_shards, tmp_path):
    """``accelerate launch`` with 2 CPU processes: each rank writes its own file (``rank-<r>.f32``), the main
    rank's memory/disk decision is every rank's, and the weights equal two processes caching in memory."""
    import os
    import subprocess
    import sys

    def launch(out: Path, port: int, *extra: str) -> subprocess.CompletedProcess:
        accelerate = Path(sys.executable).with_name("accelerate")
        cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
               "-m", "adaptcli", *PROBE, "--data", str(image_shards), "--out", str(out), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads((out / "summary.json").read_text())["processes"] == 2
        return proc

    launch(tmp_path / "memory", 29541)
    disk = launch(tmp_path / "disk", 29542, *ON_DISK)
    said = [line for line in disk.stdout.splitlines() if line.startswith("feature cache:")]
    assert said and all(f"written to {tmp_path / 'disk' / 'feature-cache'} (" in line for line in said)
    assert len(set(said)) == 1  # the main rank's measure of the free space, said alike by every rank
    assert not (tmp_path / "disk" / "feature-cache").exists()
    memory, on_disk = weights(tmp_path / "memory"), weights(tmp_path / "disk")
    assert all(torch.equal(memory[k], on_disk[k]) for k in memory)


def test_a_full_disk_names_the_cache_file_and_leaves_nothing(tmp_path):
    import errno

    from adaptcli.cli.errors import os_error_message

    class FullDisk:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    sink = feature_store.DiskSink(tmp_path / "feature-cache", rank=0, world=1)
    sink.file.close()
    sink.file = FullDisk()
    with pytest.raises(OSError) as raised:
        sink.add(torch.zeros(2, 3))
    assert raised.value.filename == str(tmp_path / "feature-cache" / "rank-0.f32")
    assert "the disk is full" in os_error_message(raised.value)
    sink.discard()
    assert not (tmp_path / "feature-cache").exists()


def test_a_grid_of_probes_reads_the_disk_cache_as_it_reads_the_memory_one(image_shards, tmp_path, cache_files):
    grid = ["--set", "method.lrs=[1.0e-7, 0.003]", "--set", "method.weight_decays=[0.05]"]
    probe(image_shards, tmp_path / "memory", *grid)
    probe(image_shards, tmp_path / "disk", *grid, *ON_DISK)
    assert len(cache_files) == 1 and not (tmp_path / "disk" / "feature-cache").exists()  # one file for every probe
    for name in ("trainable.safetensors", "best.safetensors"):
        memory, disk = read_safetensors(tmp_path / "memory" / name)[0], read_safetensors(tmp_path / "disk" / name)[0]
        assert memory.keys() == disk.keys() and all(torch.equal(memory[k], disk[k]) for k in memory)
