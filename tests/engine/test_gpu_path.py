"""The GPU path as far as a CPU can check it: auto precision, pinned loaders, DDP settings, train.compile."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import resolve
from adaptcli.data.stream.evaluation import eval_loader
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.train import train_loader
from adaptcli.engine.device import build_accelerator, pins_memory, resolve_precision
from adaptcli.errors import ConfigError
from adaptcli.io import read_safetensors
from tests.engine.conftest import TINY

runner = CliRunner()
CPU = torch.device("cpu")


def test_precision_defaults_to_auto_which_is_fp32_on_cpu():
    assert resolve(None).train.precision == "auto"
    assert resolve("quick", "arc").train.precision == "auto"
    assert resolve_precision("auto", CPU) == "no"
    assert resolve(None, overrides=["train.precision=bf16"]).train.precision == "bf16"
    assert resolve_precision("bf16", CPU) == "bf16"  # an explicit choice is kept, even on a CPU
    with pytest.raises(ConfigError, match="train.precision"):
        resolve(None, overrides=["train.precision=fp8"])


def test_a_cpu_run_records_fp32_and_says_so_once(image_shards, tmp_path):
    result = runner.invoke(app, ["finetune", "--method", "bitfit", "--recipe", "quick", "--data", str(image_shards),
                                 "--out", str(tmp_path / "run"), *TINY, "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("train.precision=auto trains in fp32") == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["precision"] == "no" and summary["compiled"] is False
    # Accelerate keeps one precision per process: another one needs a process of its own.
    explicit = subprocess.run([sys.executable, "-m", "adaptcli", "finetune", "--method", "bitfit", "--recipe", "quick",
                               "--data", str(image_shards), "--out", str(tmp_path / "bf16"), *TINY,
                               "--set", "train.epochs=1", "--set", "train.precision=bf16"],
                              capture_output=True, text=True, timeout=300)
    assert explicit.returncode == 0, explicit.stderr[-2000:]
    assert "train.precision=auto" not in explicit.stdout
    assert json.loads((tmp_path / "bf16" / "summary.json").read_text())["precision"] == "bf16"


def test_memory_is_pinned_for_cuda_only():
    assert pins_memory(torch.device("cuda", 0)) is True
    assert pins_memory(CPU) is False


@contextlib.contextmanager
def _pin_warning() -> Iterator[None]:
    """Where torch sees no accelerator, newer releases warn that nothing pins (torch 2.6 says nothing);
    where it sees one, pinning just works. Either way the batches must be the same."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pin_memory.*")
        yield


def _batches(loader) -> list[torch.Tensor]:
    return [batch.inputs for batch in loader]


def test_loaders_pass_pin_memory_to_torch_and_yield_the_same_batches(image_shards):
    spec = StreamSpec(img_size=32, num_frames=1, mean=(0.5,) * 3, std=(0.5,) * 3, augment="resize", flip=False)
    plain, _ = train_loader(ShardFolder.read(image_shards), "train", spec, 4)
    pinned, _ = train_loader(ShardFolder.read(image_shards), "train", spec, 4, pin_memory=True)
    assert pinned.loader(0).pin_memory and not plain.loader(0).pin_memory
    with _pin_warning():
        got = _batches(pinned.loader(0))
    assert all(torch.equal(a, b) for a, b in zip(_batches(plain.loader(0)), got, strict=True))
    evaluation = eval_loader(ShardFolder.read(image_shards), "test", spec, 4, pin_memory=True)
    assert evaluation.loader.pipeline[0].pin_memory
    with _pin_warning():
        got = _batches(evaluation)
    unpinned = eval_loader(ShardFolder.read(image_shards), "test", spec, 4)
    assert all(torch.equal(a, b) for a, b in zip(_batches(unpinned), got, strict=True))


def test_ddp_searches_for_unused_parameters_only_when_the_method_says_so():
    for method in ("lora", "arc", "full"):
        accelerator = build_accelerator(resolve(None, method))
        assert accelerator.ddp_handler.find_unused_parameters is False
        assert accelerator.mixed_precision == "no"


# --------------------------------------------------------------------------- train.compile


def _train(data: Path, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["finetune", "--method", "adaptformer", "--recipe", "quick", "--data", str(data),
                                 "--out", str(out), *TINY, "--set", "train.optimizer=sgd", "--set", "train.lr=0.01",
                                 *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes(image_shards, tmp_path):
    """torch.compile on CPU (inductor, needs a C++ compiler): the same weights as eager, the same keys in
    checkpoints, and a compiled run resumed from its epoch-1 checkpoint ends where it did."""
    import shutil

    common = ["--set", "train.epochs=2", "--set", "train.keep_checkpoints=3"]
    eager = _train(image_shards, tmp_path / "eager", *common)
    compiled = _train(image_shards, tmp_path / "compiled", *common, "--set", "train.compile=true")
    assert compiled["compiled"] is True and compiled["steps"] == eager["steps"]
    assert torch.isfinite(torch.tensor(compiled["final_loss"]))
    a, _ = read_safetensors(tmp_path / "eager" / "trainable.safetensors")
    b, _ = read_safetensors(tmp_path / "compiled" / "trainable.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() <= 1e-4, key
    saved, _ = read_safetensors(tmp_path / "compiled" / "checkpoints" / "epoch-0001" / "model.safetensors")
    assert set(saved) == set(a)  # no "_orig_mod." in what Accelerate saved

    shutil.copytree(tmp_path / "compiled", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "epoch-0002")
    _train(image_shards, tmp_path / "resumed", *common, "--set", "train.compile=true", "--resume")
    c, _ = read_safetensors(tmp_path / "resumed" / "trainable.safetensors")
    for key in b:
        assert (b[key] - c[key]).abs().max().item() <= 1e-6, key


@pytest.mark.slow
def test_a_failing_compile_is_one_line_naming_the_fix(image_shards, tmp_path):
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "adaptcli", "finetune", "--method", "bitfit", "--recipe", "quick",
                           "--data", str(image_shards), "--out", str(tmp_path / "run"), *TINY,
                           "--set", "train.epochs=1", "--set", "train.compile=true"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "train.compile=false" in errors[0] and "Traceback" not in proc.stderr
