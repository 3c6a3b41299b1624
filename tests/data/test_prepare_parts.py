"""``prepare --part K/N`` in separate processes plus the merge give the one-part run's dataset; refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tests.data.shard_reader import read_split

from adaptcli.data.prepare.prepare import STATE_NAME
from adaptcli.data.stream.evaluation import eval_loader
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
SPLITS = ("train", "validation", "test")


def _command(src: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "adaptcli", "prepare", "ssv2", str(src), "--shards", str(out),
            "--samples-per-shard", "5", "--workers", "0", "--no-progress", *extra]


def _tree(out: Path) -> dict[str, bytes]:
    """Every file of a shard folder, the progress file included."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def _recorded(folder: Path) -> set[str]:
    """The shards the progress file in ``folder`` records as finished (none while it is absent)."""
    try:
        return set(json.loads((folder / STATE_NAME).read_text())["shards"])
    except (FileNotFoundError, json.JSONDecodeError):
        return set()


def _parts_at_once(src: Path, outs: list[Path], count: int) -> list[subprocess.CompletedProcess]:
    """Run parts 1..count at the same time, part K writing into ``outs[K-1]``."""
    procs = [subprocess.Popen(_command(src, out, "--part", f"{k}/{count}"), env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for k, out in enumerate(outs, 1)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.stdout.read()) for p in procs]


def _same_samples(merged: Path, reference: Path) -> None:
    """Same keys, labels and frames per split, as files and as the training stream decodes them."""
    spec = StreamSpec(img_size=32, num_frames=4, mean=(0.5,) * 3, std=(0.25,) * 3)
    for split in SPLITS:
        assert read_split(merged, split) == read_split(reference, split)
        ours = list(eval_loader(ShardFolder.read(merged), split, spec, 4))
        theirs = list(eval_loader(ShardFolder.read(reference), split, spec, 4))
        assert [b.keys for b in ours] == [b.keys for b in theirs] and ours
        for a, b in zip(ours, theirs):
            assert torch.equal(a.labels, b.labels) and torch.equal(a.inputs, b.inputs)


def test_three_parts_in_one_folder_merge_into_the_one_part_dataset(ssv2, ssv2_shards, tmp_path):
    """Three processes at once into one (shared) folder: the last to finish merges."""
    out = tmp_path / "shared"
    results = _parts_at_once(ssv2["root"], [out] * 3, 3)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stdout[-2000:] for r in results]
    assert sum("merged them into" in r.stdout for r in results) >= 1
    assert _tree(out) == _tree(ssv2_shards)  # shards, dataset.json and progress file, byte for byte
    _same_samples(out, ssv2_shards)
    manifest = json.loads((out / "dataset.json").read_text())
    reference = json.loads((ssv2_shards / "dataset.json").read_text())
    assert manifest == reference and manifest["splits"]["train"]["samples"] > 0


def test_parts_on_three_machines_copied_together_then_merge(ssv2, ssv2_shards, tmp_path):
    """Each "machine" writes its own folder; the copies go into one folder; prepare --merge."""
    hosts = [tmp_path / f"host{k}" for k in (1, 2, 3)]
    results = _parts_at_once(ssv2["root"], hosts, 3)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stdout[-2000:] for r in results]
    for host in hosts:
        assert not (host / "dataset.json").exists() and not list(host.glob("*.tar"))
    merged = tmp_path / "merged"
    early = subprocess.run(_command(ssv2["root"], merged, "--merge"), env=ENV, capture_output=True, text=True)
    assert early.returncode == 2 and "holds no parts" in early.stderr and not merged.exists()
    for host in hosts[:2]:
        shutil.copytree(host, merged, dirs_exist_ok=True)
    missing = subprocess.run(_command(ssv2["root"], merged, "--merge"), env=ENV, capture_output=True, text=True)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "lacks finished parts: 3/3 (0 of 2 shards)" in missing.stderr
    assert not (merged / "dataset.json").exists()
    shutil.copytree(hosts[2], merged, dirs_exist_ok=True)
    done = subprocess.run(_command(ssv2["root"], merged, "--merge"), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "merged the 3 parts" in done.stdout
    assert _tree(merged) == _tree(ssv2_shards)
    _same_samples(merged, ssv2_shards)
    again = subprocess.run(_command(ssv2["root"], merged, "--merge"), env=ENV, capture_output=True, text=True)
    assert again.returncode == 2 and "nothing to do" in again.stderr
    assert _tree(merged) == _tree(ssv2_shards)


def test_killed_part_resumes(ssv2, ssv2_shards, tmp_path, run_cli):
    out = tmp_path / "out"
    part = out / ".parts" / "2-of-3"
    proc = subprocess.Popen(_command(ssv2["root"], out, "--part", "2/3"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # wait for the progress file to record shard 1, not for the shard itself: a kill between the shard's
    # rename and that record leaves a shard the resume rightly re-encodes (nothing reused to assert on)
    while time.time() < deadline and proc.poll() is None and "train-000001.tar" not in _recorded(part):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "dataset.json").exists()
    assert (part / "train-000001.tar").exists()  # part 2/3 writes shards 1, 4 and 7 of the plan
    (part / "train-000004.tar").write_bytes(b"partial")  # the worst case: a half shard under its final name
    resumed = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--samples-per-shard", "5",
                      "--no-progress", "--workers", "0", "--part", "2/3")
    assert resumed.exit_code == 0, resumed.output
    assert "reused from an earlier run" in resumed.output and "/3 parts are done" not in resumed.output
    for k in (1, 3):
        result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--samples-per-shard", "5",
                         "--no-progress", "--workers", "0", "--part", f"{k}/3")
        assert result.exit_code == 0, result.output
    assert "merged them into" in result.output
    assert _tree(out) == _tree(ssv2_shards)


@pytest.mark.parametrize("part", ["0/3", "4/3", "1/1001", "1/0", "2", "a/b", "-1/3", "1/3/5"])
def test_part_range_checked_before_any_work(ssv2, tmp_path, run_cli, part):
    out = tmp_path / "out"
    result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--no-progress", "--part", part)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "K/N" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_refusals(ssv2, tmp_path, run_cli):
    out = tmp_path / "out"

    def prepare(*extra):
        return run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--samples-per-shard", "5",
                       "--no-progress", "--workers", "0", *extra)

    def refused(result, *words):
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        for word in words:
            assert word in result.output, result.output

    refused(prepare("--part", "9/9"), "8 shards", "at most 8 parts")  # 8 shards cannot feed 9 parts
    refused(prepare("--part", "1/2", "--merge"), "exclude each other")
    refused(prepare("--part", "1/2", "--overwrite"), "--overwrite does not combine")
    assert not out.exists()
    assert prepare("--part", "1/3").exit_code == 0
    before = _tree(out / ".parts" / "1-of-3")
    refused(prepare("--part", "2/3", "--quality", "50"), "other settings", "quality")
    refused(prepare("--part", "1/2"), "cut the data into 3 parts", "--part K/3")
    refused(prepare("--merge"), "lacks finished parts", "2/3", "3/3")
    import fcntl  # a second process preparing part 3/3 right now: a duplicate part

    with open(out / ".parts" / "3-of-3.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused(prepare("--part", "3/3"), "another process", "run each part once")
    assert not (out / ".parts" / "3-of-3").exists()
    (out / ".parts" / "1-of-2").mkdir()  # parts of another cut copied in: their shards would be duplicates
    refused(prepare("--part", "2/3"), "not of its 3-part cut", "1-of-2")
    refused(prepare("--merge"), "not of its 3-part cut", "1-of-2")
    assert not (out / ".parts" / "2-of-3").exists()
    assert _tree(out / ".parts" / "1-of-3") == before  # nothing a refusal touched
    assert not (out / "dataset.json").exists()
    refused(prepare(), "unmerged parts", "--overwrite")  # a whole run over unmerged parts
    assert _tree(out / ".parts" / "1-of-3") == before
    replaced = prepare("--splits", "test", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert not (out / ".parts").exists() and (out / "dataset.json").is_file()
    whole = tmp_path / "whole"
    assert run_cli("prepare", "ssv2", ssv2["root"], "--shards", whole, "--samples-per-shard", "5",
                   "--no-progress", "--workers", "0", "--splits", "test").exit_code == 0
    result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", whole, "--samples-per-shard", "5",
                     "--no-progress", "--workers", "0", "--splits", "test", "--part", "1/1")
    refused(result, "already holds a prepared dataset")


def test_merge_refuses_a_part_made_with_other_settings(ssv2, tmp_path, run_cli):
    """Two machines, one of them with another --quality: the copies merged together are refused."""

    def prepare(out, *extra):
        return run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--samples-per-shard", "5", "--splits",
                       "validation", "--no-progress", "--workers", "0", *extra)

    assert prepare(tmp_path / "a", "--part", "1/2").exit_code == 0
    assert prepare(tmp_path / "b", "--part", "2/2", "--quality", "50").exit_code == 0
    merged = tmp_path / "merged"
    for host in ("b", "a"):  # a's parts.json (quality 90) is the one kept
        shutil.copytree(tmp_path / host, merged, dirs_exist_ok=True)
    for extra, words in (((), ("--part 2/2", "other settings", "quality: parts 50, now 90")), (("--quality", "50"), ("other settings", "quality"))):
        result = prepare(merged, "--merge", *extra)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert all(word in result.output for word in words), result.output
    assert not (merged / "dataset.json").exists() and not list(merged.glob("*.tar"))
