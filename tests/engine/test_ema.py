"""``train.ema``: timm's ModelEmaV3 beside the raw weights, validated, saved as its own weights, resumed."""

from __future__ import annotations

import json
import shutil

import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.io import read_safetensors
from tests.engine.conftest import TINY

runner = CliRunner()
EMA = ["--set", "train.ema=0.9", "--set", "train.epochs=2", "--set", "train.keep_checkpoints=3",
       "--set", "method.r=4"]


def finetune(data, out, *extra):
    result = runner.invoke(app, ["finetune", "--method", "lora", "--recipe", "quick", "--data", str(data),
                                 "--out", str(out), *TINY, *EMA, *extra])
    assert result.exit_code == 0, result.output
    return result


def test_ema_weights_differ_from_the_raw_ones_are_validated_and_evaluated(image_shards, tmp_path):
    run = tmp_path / "run"
    finetune(image_shards, run)
    raw, _ = read_safetensors(run / "trainable.safetensors")
    ema, header = read_safetensors(run / "ema.safetensors")
    assert raw.keys() == ema.keys() and any("lora_B" in k for k in raw)
    assert all(not torch.equal(raw[k], ema[k]) for k in raw if "lora_B" in k)  # an average lags the raw weights
    assert header["weights"] == "ema" and json.loads(header["step"]) > 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("ema_val_top1" in r and "val_top1" in r for r in records)
    _, best = read_safetensors(run / "best.safetensors")  # the best epoch is chosen on the average
    assert best["weights"] == "ema"
    shown = runner.invoke(app, ["eval", "--run", str(run), "--weights", "ema", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output[shown.output.index("{"):shown.output.rindex("}") + 1])["samples"] == 18
    plain = tmp_path / "plain"
    result = runner.invoke(app, ["finetune", "--method", "lora", "--recipe", "quick", "--data", str(image_shards),
                                 "--out", str(plain), *TINY, "--set", "method.r=4", "--set", "train.epochs=1"])
    assert result.exit_code == 0 and not (plain / "ema.safetensors").exists()
    refused = runner.invoke(app, ["eval", "--run", str(plain), "--weights", "ema"])
    assert refused.exit_code == 2 and "trained without train.ema" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


def test_ema_resumes_exactly(image_shards, tmp_path):
    finetune(image_shards, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "epoch-0002")
    for name in ("summary.json", "trainable.safetensors", "best.safetensors", "ema.safetensors"):
        (tmp_path / "b" / name).unlink(missing_ok=True)
    resumed = finetune(image_shards, tmp_path / "b", "--resume")
    assert "resumed from" in resumed.output
    a, _ = read_safetensors(tmp_path / "a" / "ema.safetensors")
    b, _ = read_safetensors(tmp_path / "b" / "ema.safetensors")
    first, _ = read_safetensors(tmp_path / "a" / "checkpoints" / "epoch-0001" / "ema.safetensors")
    assert a.keys() == b.keys() == first.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
    assert any(not torch.equal(first[k], a[k]) for k in a)  # epoch 2 moved the average
