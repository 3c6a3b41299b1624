"""Every benchmark script runs end to end in its ``--quick`` mode (a smoke test: structure, never timings)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (script, arguments, strings the output must contain); add a case per benchmark script
CASES = [
    ("loader.py", ["--quick", "--profile", "ssv2"],
     ["data: ssv2, 8 clips", "kB per frame", "webm decode", "per clip: webm path", "shards/webm", "shards/ceiling",
      "\n       0 ", " 0 (cpu) ", "\n       2 ", " 2 (cpu) ", "goal shards >= 5x webm: ",
      "goal shards >= 0.9x ceiling: ", "[wall clock]", "[CPU time]", "epoch boundary: gap", "before gap",
      "pil (stream): ", "torchvision decode + torch resize: ", "GPU: real finetune samples/s"]),
    ("loader.py", ["--quick", "--profile", "hmdb51", "--workers", "0"],
     ["data: hmdb51, 8 clips", "avi 30 fps", "shards/avi", "\n       0 ", "goal shards >= 5x avi: "]),
    ("prepare.py", ["--quick"],
     ["data: 4 Kinetics-like clips", "kinetics-like: 4 clips", "ssv2-like: 4 clips", "| 7.5 | 7.5 | 15.0 |",
      "| 30 | 12 |", "clips per CPU-s", "shard kB per clip", "kinetics-like per frame: decode", "| Kinetics-700 | 650,317 |",
      "| 1 | ", "| 2 | ", "wall speed-up", "load average after"]),
    ("tar_reader.py", ["--quick"], ["  adaptcli: ", "webdataset: ", "ms per clip (6 members), best of 2"]),
    ("train_step.py", ["--quick", "--model", "video_vit_test", "--img-size", "32", "--frames", "4", "--probe-clips", "4",
                       "--methods", "arc,arc+rc,adaptformer+rc_keep_qkv,full+rc_all,adaptformer_top,lora+pace,"
                       "attentive_probe,attentive_probe_frozen_pass,attentive_probe_grid4"],
     ["device cpu", "| full | 1.00 |", "| arc |", "| arc+rc |", "| adaptformer+rc_keep_qkv |", "| full+rc_all |",
      "| adaptformer_top |", "| floor_all |", "| floor_top |", "<= 0.40 ", "<= 1.15 ", "<= 1.05 ",
      "| with feature cache |", "| lora+pace |", "second pass x floor", "<= 1.10 ", "| attentive_probe |",
      "| attentive_probe_frozen_pass |", "| floor_frozen |", "| attentive_probe_grid4 (4 probes, one backbone pass) |"]),
    ("arc_profile.py", ["--quick"],
     ["fused vs formula output: max |diff|", "| adapter (fused, adaptcli) |", "| six rank-50 matmuls |"]),
    ("inference.py", ["--quick"],
     ["test_vit, cpu", "merged vs unmerged ARC", "FLOPs relative to plain", "| 1 | plain |", "| 1 | arc merged |",
      "| 1 | arc unmerged |", "| 1 | adaptformer |"]),
    ("feature_cache.py", ["--quick"],
     ["1. three finetune runs", "no cache  median epoch", "feature_cache=False", "in memory median epoch",
      "on disk   median epoch", "written to ", "2. one epoch of each, interleaved", "| no cache |", "| in memory | ",
      "| on disk | "]),
]


def run_quick(script: str, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args", "expected"), CASES, ids=[f"{c[0]} {' '.join(c[1])}" for c in CASES])
def test_benchmark_quick_mode_runs(script: str, args: list[str], expected: list[str]) -> None:
    result = run_quick(script, args)
    assert result.returncode == 0, result.stderr[-3000:]
    missing = [text for text in expected if text not in result.stdout]
    assert not missing, f"missing {missing} in:\n{result.stdout}"

