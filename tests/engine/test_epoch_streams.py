"""The next epoch's loader starts early without changing a batch or the random state, and the share of
time the training loop waits for data is measured and reported."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import resolve
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.engine.batches import DataWait, EpochStreams, epoch_batches
from adaptcli.runs.session import Session
from tests.engine.conftest import TINY

ONE_PROCESS = SimpleNamespace(process_index=0, num_processes=1, device=torch.device("cpu"))


def _session(shards, workers: int) -> Session:
    config = resolve("quick", "linear", ["model.img_size=32", f"data.workers={workers}",
                                         "train.batch_size=5"])
    return Session.for_training(config, ShardFolder.read(shards))


def _keys(batches) -> list[list[str]]:
    return [batch.keys for batch in batches]


def test_prefetched_epoch_has_the_batches_and_random_state_of_a_fresh_one(image_shards):
    session = _session(image_shards, workers=2)
    streams = EpochStreams.of(session, ONE_PROCESS, pin_memory=False)
    assert streams.lead == 4
    torch.manual_seed(7)
    fresh = epoch_batches(session, 1, ONE_PROCESS, pin_memory=False)
    fresh_state = torch.get_rng_state()
    expected = [(b.keys, b.inputs.clone()) for b in fresh]

    torch.manual_seed(7)
    streams.prefetch(1)
    assert torch.equal(torch.get_rng_state(), torch.random.default_generator.get_state())
    assert torch.equal(torch.get_rng_state(), _seeded_state(7))  # starting the workers drew nothing
    got_batches = streams.batches(1)
    assert torch.equal(torch.get_rng_state(), fresh_state)  # the draw iter(loader) makes, made at the start
    got = [(b.keys, b.inputs) for b in got_batches]
    assert [k for k, _ in got] == [k for k, _ in expected] and len(got) == 9
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected))


def _seeded_state(seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.get_rng_state()


def test_a_prefetched_stream_of_another_epoch_is_not_used(image_shards):
    session = _session(image_shards, workers=1)
    streams = EpochStreams.of(session, ONE_PROCESS, pin_memory=False)
    streams.prefetch(2)
    assert _keys(streams.batches(1)) == _keys(epoch_batches(session, 1, ONE_PROCESS, pin_memory=False))


def test_no_prefetch_without_workers(image_shards):
    streams = EpochStreams.of(_session(image_shards, workers=0), ONE_PROCESS, pin_memory=False)
    streams.prefetch(1)
    assert streams.lead == 0 and streams._ready is None


def _slow(batches, seconds: float):
    for batch in batches:
        time.sleep(seconds)
        yield batch


def test_data_wait_share_large_for_a_slow_loader_small_for_a_fast_one():
    def loop(delay: float) -> DataWait:
        wait = DataWait()
        start = time.time()
        for _ in wait.timed(_slow(iter(range(5)), delay)):
            time.sleep(0.02)  # the training step
        wait.wall += time.time() - start
        return wait

    slow, fast = loop(0.08), loop(0.0)
    assert slow.share > 0.6 and fast.share < 0.2
    assert "data.workers (now 3)" in slow.warning(3) and slow.warning(3) is None  # said once
    assert fast.warning(3) is None


def test_summary_reports_data_wait(image_shards, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data",
                                      str(image_shards), "--out", str(out), *TINY, "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["data_wait"] <= 1.0
    assert "waiting for data" in result.output
