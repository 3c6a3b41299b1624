"""Two processes taking over one stale run lock at the same moment: exactly one may hold it."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adaptcli.errors import AdaptError
from adaptcli.runs.lock import LOCK_NAME, RunLock

TRIALS = 300


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _take(folder: str, start, done, results) -> None:
    start.wait()
    import adaptcli.runs.lock as L; orig = L.RunLock.holder
    def h(self):
        r = orig(self); print(os.getpid(), "sees", r, L.process_alive(r["pid"]) if r else None, flush=True); return r
    L.RunLock.holder = h
    try:
        RunLock(Path(folder)).acquire()
        results.put("held")
    except AdaptError:
        results.put("refused")
    done.wait()  # a holder stays alive until both have tried, so its lock is never stale meanwhile


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to start both takers at once")
def test_two_takeovers_of_one_stale_lock_never_both_hold(tmp_path):
    ctx = mp.get_context("fork")
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "started": 0}
    outcomes = []
    for trial in range(TRIALS):
        folder = tmp_path / f"run{trial}"
        folder.mkdir()
        (folder / LOCK_NAME).write_text(json.dumps(stale))
        start, done, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
        takers = [ctx.Process(target=_take, args=(str(folder), start, done, results)) for _ in range(2)]
        for taker in takers:
            taker.start()
        for taker in takers:
            taker.join(30)
        got = sorted(results.get(timeout=5) for _ in takers)
        outcomes.append(got)
        # the lock names one of the two takers (neither released it: both have exited)
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] in {t.pid for t in takers}
    assert all(got == ["held", "refused"] for got in outcomes), [g for g in outcomes if g != ["held", "refused"]]
