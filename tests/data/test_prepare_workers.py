"""``prepare --workers``: up to the cores this process may use (beyond 8 where it has them), refused above."""

from __future__ import annotations

import os

import pytest

from adaptcli.data.prepare import cores
from adaptcli.errors import AdaptError


def _cores(monkeypatch, count: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(count)), raising=False)


def test_workers_follow_the_usable_cores(monkeypatch):
    _cores(monkeypatch, 16)
    assert cores.usable_cores() == 16
    assert cores.decoding_workers(None) == 16  # the default: one per usable core, not at most 8
    assert cores.decoding_workers(12) == 12 and cores.decoding_workers(0) == 0
    with pytest.raises(AdaptError) as info:
        cores.decoding_workers(17)
    assert "16 CPU cores" in str(info.value) and "0 to 16" in str(info.value) and "\n" not in str(info.value)
    _cores(monkeypatch, 2)  # a small machine keeps what was always allowed: up to 8
    assert cores.decoding_workers(None) == 2 and cores.decoding_workers(8) == 8
    with pytest.raises(AdaptError, match="use 2 CPU cores; pass --workers 0 to 8"):
        cores.decoding_workers(9)


def test_more_workers_than_cores_refused_before_any_work(ssv2, tmp_path, run_cli):
    out = tmp_path / "out"
    have = cores.usable_cores()
    most = max(have, 8)
    result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", out, "--no-progress", "--workers", most + 1)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert f"--workers {most + 1}: this machine lets adaptcli use {have} CPU cores" in result.output
    assert not out.exists()


def test_beyond_eight_workers_same_output(ssv2, tmp_path, run_cli, monkeypatch):
    """On a machine with 12 usable cores, 10 decoding processes are allowed and change nothing."""
    outs = {}
    for workers in ("0", "10"):
        _cores(monkeypatch, 12)
        outs[workers] = tmp_path / f"w{workers}"
        result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", outs[workers], "--splits", "validation",
                         "--samples-per-shard", "5", "--no-progress", "--workers", workers)
        assert result.exit_code == 0, result.output
    tree = [{p.name: p.read_bytes() for p in out.iterdir()} for out in outs.values()]
    assert tree[0] == tree[1] and any(name.endswith(".tar") for name in tree[0])
