"""Helpers for the CUDA tests: the CLI in subprocesses that see the GPU (the rest of the suite is pinned
to the CPU by tests/conftest.py), and the tiny shard folders of the engine tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.engine.conftest import TINY, image_shards, video_shards  # noqa: F401
from tests.export.conftest import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
#: Two optimiser steps of one epoch: enough to see a finite loss and a checkpoint.
SHORT = ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2"]


def gpu_env() -> dict[str, str]:
    """This process's environment without the CPU pin, so that Accelerate picks the GPU."""
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(*args: object, cpu: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m adaptcli ARGS`` on the GPU (or pinned to the CPU with ``cpu=True``)."""
    env = gpu_env() if not cpu else {**gpu_env(), "ACCELERATE_USE_CPU": "1"}
    return subprocess.run([sys.executable, "-m", "adaptcli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def cli_batch(jobs: list[list[str]], work: Path, timeout: float = 900) -> list[dict]:
    """Every job in one GPU process (tests/cuda/batch_cli.py); their exit codes and outputs, in order."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "jobs.json").write_text(json.dumps([[str(a) for a in job] for job in jobs]))
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("batch_cli.py")), str(work / "jobs.json"),
                           str(work / "results.json")], capture_output=True, text=True, env=gpu_env(), timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "results.json").read_text())


def finetune_args(data: Path, out: Path, method: str, *extra: str, short: bool = True) -> list[str]:
    """``finetune`` of a tiny model with small method options; two steps unless ``short=False``."""
    return ["finetune", "--method", method, "--recipe", "quick", "--data", str(data), "--out", str(out),
            *TINY, *(SHORT if short else []), *OPTIONS.get(method, []), *extra]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())
