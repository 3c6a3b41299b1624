"""One small VTAB-1k suite (3 tasks from the 3 groups, 2-point sweep), killed once and re-run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.data.standins import build_vtab

TASKS = ("dtd", "eurosat", "kitti")  # natural, specialized, structured
POINTS = ("lr-1e-05", "lr-0.03")
SUITE_ARGS = ["--method", "arc", "--model", "test_vit", "--recipe", "quick", "--set", "model.img_size=32",
              "--set", "data.workers=0", "--set", "train.batch_size=2", "--set", "train.epochs=2",
              "--sweep", "train.lr=1e-5,3e-2", "--no-progress"]


@dataclass
class Suite:
    shards: Path
    out: Path
    dry_run_output: str
    killed_code: int
    first_files: dict[str, float]  # mtimes of the first run's files when the suite was killed
    rerun_output: str


def suite_command(shards: Path, out: Path, *extra: str) -> list[str]:
    return ["suite", "vtab", "--data", str(shards), "--out", str(out), *SUITE_ARGS, *extra]


@pytest.fixture(scope="session")
def vtab_suite(tmp_path_factory) -> Suite:
    root = tmp_path_factory.mktemp("vtab-suite")
    build_vtab(root / "vtab-1k", tasks=TASKS)
    runner = CliRunner()
    prepared = runner.invoke(app, ["prepare", "vtab", str(root / "vtab-1k"), "--shards", str(root / "shards"),
                                   "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    shards, out = root / "shards", root / "suite"

    dry = runner.invoke(app, suite_command(shards, out, "--dry-run"))
    assert dry.exit_code == 0, dry.output

    # Kill the suite from outside as soon as its first run folder has its summary.json.
    first = out / TASKS[0] / "sweep" / POINTS[0]
    process = subprocess.Popen([sys.executable, "-m", "adaptcli", *suite_command(shards, out)],
                               env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (first / "summary.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.kill()
    code = process.wait()
    files = {name: (first / name).stat().st_mtime_ns for name in ("summary.json", "trainable.safetensors")}

    rerun = runner.invoke(app, suite_command(shards, out))
    assert rerun.exit_code == 0, rerun.output
    return Suite(shards, out, dry.output, code, files, rerun.output)
