"""``benchmarks/gpu_check.sh --dry``: the GPU check's CPU-possible parts end in its summary table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_gpu_check_runs_every_stage_and_prints_the_table_last(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT), "DEADLINE": "280"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry"], capture_output=True,
                          text=True, env=env, timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    table = done.stdout.strip().splitlines()[-7:]
    assert table[0] == "| stage | status | s | result |"
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table[2:]}
    assert rows == {"info": "ok", "cuda_tests": "ok", "suite": "ok", "train_step": "ok", "pipeline": "ok"}, table
    assert "skipped" in table[3] and "passed" in table[4]  # CUDA tests skip on a CPU; the suite subset ran
    assert "samples/s" in table[6] and "arc merge check" in table[6]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) <= 8 and "summary.md" in written
    assert (tmp_path / "out" / "summary.md").read_text().strip().splitlines()[-5:] == table[2:]
