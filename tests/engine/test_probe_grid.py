"""A grid of attentive probes (method.lrs x method.weight_decays) on one backbone pass per batch.

In float64, every probe of a grid ends with exactly the weights a one-probe run with its lr and weight
decay reaches (same seed, same batches), on cached tokens and on images; the backbone runs once per batch
for all of them. Through the CLI: the kept probe is exported and predicts as the one-probe run with its
settings, a stopped grid run resumes to the same files, and bad grids are refused before any work.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import timm
import torch
from accelerate import Accelerator

from adaptcli.cli import app
from adaptcli.config import TrainConfig
from adaptcli.data.stream.batch import Batch
from adaptcli.engine.features import HeadOnly
from adaptcli.engine.optim import build_optimizer, build_scheduler
from adaptcli.engine.probe_grid import GridScheduler, ProbeGrid, grid_optimizer
from adaptcli.engine.step import train_step
from adaptcli.engine.signals import StopSignals
from adaptcli.io import read_safetensors
from adaptcli.methods import apply_method
from adaptcli.methods.apply import trainable_state_dict
from adaptcli.methods.registry import method_spec
from tests.engine.conftest import TINY
from tests.engine.test_finetune import runner

SETTINGS = [(3e-3, 0.01), (1e-3, 0.4), (5e-3, 0.8)]
# warm-up from lr / 2 over the first epoch, cosine to min_lr, per-probe clipping that bites
TRAIN = TrainConfig(epochs=2, warmup_epochs=1, optimizer="adamw", clip_grad=0.05, min_lr=1e-5)
STEPS_PER_EPOCH, BATCH = 3, 4


def probe_model():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32, embed_dim=64,
                              depth=2, num_heads=4)
    info = apply_method(model, "attentive_probe", method_spec("attentive_probe").options(depth=2, heads=4))
    return model.double(), info


def batches(cached: bool):
    generator = torch.Generator().manual_seed(5)
    shape = (BATCH, 5, 64) if cached else (BATCH, 3, 32, 32)  # 4 patch tokens and the class token, or images
    for _ in range(2 * STEPS_PER_EPOCH):
        yield Batch(inputs=torch.randn(*shape, generator=generator, dtype=torch.float64),
                    labels=torch.randint(0, 3, (BATCH,), generator=generator), keys=[])


def count_backbone_passes(model) -> list[int]:
    calls = [0]
    model.patch_embed.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def train_alone(cached: bool, lr: float, weight_decay: float) -> dict[str, torch.Tensor]:
    model, info = probe_model()
    trained = HeadOnly(model) if cached else model
    train = replace(TRAIN, lr=lr, weight_decay=weight_decay)
    optimizer = build_optimizer(trained, train, lr)
    scheduler = build_scheduler(optimizer, train, STEPS_PER_EPOCH, lr)
    for step, batch in enumerate(batches(cached)):
        train_step(Accelerator(cpu=True), trained, optimizer, batch, train, multi_label=False)
        scheduler.step_update(num_updates=step + 1)
    return trainable_state_dict(model, info)


def train_grid(cached: bool) -> tuple[list[dict[str, torch.Tensor]], int, dict[str, torch.Tensor]]:
    model, info = probe_model()
    start = {k: v.clone() for k, v in trainable_state_dict(model, info).items()}
    passes = count_backbone_passes(model)
    grid = ProbeGrid.around(HeadOnly(model) if cached else model, model, len(SETTINGS))
    lrs = [lr for lr, _ in SETTINGS]
    optimizer = grid_optimizer(grid, TRAIN, lrs, [decay for _, decay in SETTINGS])
    scheduler = GridScheduler(optimizer, grid, TRAIN, STEPS_PER_EPOCH, lrs)
    for step, batch in enumerate(batches(cached)):
        losses, _ = train_step(Accelerator(cpu=True), grid, optimizer, batch, TRAIN, multi_label=False)
        assert losses.shape == (len(SETTINGS),)
        scheduler.step_update(num_updates=step + 1)
    state = trainable_state_dict(model, info)
    return [grid.probe_state(k, model, state) for k in range(len(SETTINGS))], passes[0], start


@pytest.mark.parametrize("cached", [True, False], ids=["feature_cache", "images"])
def test_each_probe_of_a_grid_equals_its_one_probe_run_in_float64(cached):
    probes, passes, start = train_grid(cached)
    assert passes == (0 if cached else 2 * STEPS_PER_EPOCH)  # one backbone pass per batch for all three probes
    for (lr, decay), probe in zip(SETTINGS, probes):
        alone = train_alone(cached, lr, decay)
        assert probe.keys() == alone.keys()
        for key in alone:
            assert torch.allclose(probe[key], alone[key], rtol=0, atol=1e-12), (lr, decay, key)
    for key in start:  # the weights moved, and each probe differently
        assert not torch.allclose(probes[0][key], start[key]), key
    assert not torch.allclose(probes[0]["head.weight"], probes[1]["head.weight"])


def test_the_grid_s_forward_is_each_probe_on_one_backbone_pass():
    model, _ = probe_model()
    grid = ProbeGrid.around(model, model, 3)
    with torch.no_grad():
        for probe in grid.probes:  # make the copies differ from probe 0
            for param in probe.parameters():
                param.add_(0.1 * torch.randn_like(param))
    passes = count_backbone_passes(model)
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        logits = grid.eval()(images)
        assert passes[0] == 1 and logits.shape == (3, 2, 3)
        tokens = model.forward_features(images)
        assert torch.allclose(logits[0], model(images), rtol=0, atol=1e-12)
        for index, probe in enumerate(grid.probes, start=1):
            assert torch.allclose(logits[index], probe(tokens), rtol=0, atol=1e-12)


GRID = ["--set", "method.heads=4", "--set", "train.epochs=2", "--set", "method.lrs=[1.0e-7, 0.003]",
        "--set", "method.weight_decays=[0.05]"]


def finetune(data, out, *extra):
    result = runner.invoke(app, ["finetune", "--method", "attentive_probe", "--recipe", "quick", "--data", str(data),
                                 "--out", str(out), "--no-progress", *TINY, *extra])
    return result


def tensors(path):
    return read_safetensors(path)[0]


def assert_same_tensors(a, b, atol=1e-6):
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.allclose(ta[key], tb[key], rtol=0, atol=atol), key


def test_a_grid_run_keeps_the_best_probe_which_exports_and_predicts_as_its_one_probe_run(image_shards, tmp_path):
    result = finetune(image_shards, tmp_path / "grid", *GRID)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "grid" / "summary.json").read_text())
    probes = summary["probes"]
    assert [(p["lr"], p["weight_decay"]) for p in probes] == [(1e-7, 0.05), (0.003, 0.05)]
    assert [p["chosen"] for p in probes] == [False, True]  # lr 1e-7 barely moves from its random start
    assert probes[1]["best_val_top1"] > probes[0]["best_val_top1"]
    assert summary["best_val_top1"] == probes[1]["best_val_top1"] and summary["effective_lr"] == 0.003
    assert "2 probes on one backbone pass; kept: best on validation" in result.output
    assert "probe 1: lr 0.003, weight decay 0.05, val top-1" in result.output and "<- kept" in result.output
    assert summary["trainable_params"] == 2 * json.loads(runner.invoke(app, [
        "inspect-params", "--model", "test_vit", "--method", "attentive_probe", "--num-classes", "3", "--json",
        "--set", "method.heads=4"]).stdout)["trainable_params"]

    alone = finetune(image_shards, tmp_path / "alone", "--set", "method.heads=4", "--set", "train.epochs=2",
                     "--set", "train.lr=0.003", "--set", "train.weight_decay=0.05")
    assert alone.exit_code == 0, alone.output
    assert json.loads((tmp_path / "alone" / "summary.json").read_text()).get("probes") is None
    for name in ("best.safetensors", "trainable.safetensors"):
        assert_same_tensors(tmp_path / "grid" / name, tmp_path / "alone" / name)
    images = image_shards.parent / "src" / "test"
    outputs = {}
    for run in ("grid", "alone"):
        export = tmp_path / f"{run}.safetensors"
        exported = runner.invoke(app, ["export", "--run", str(tmp_path / run), "--full", "--out", str(export)])
        assert exported.exit_code == 0, exported.output
        predicted = runner.invoke(app, ["predict", str(export), str(images), "--no-progress",
                                        "--out", str(tmp_path / f"{run}.jsonl")])
        assert predicted.exit_code == 0, predicted.output
        outputs[run] = [json.loads(line) for line in (tmp_path / f"{run}.jsonl").read_text().splitlines()]
    assert len(outputs["grid"]) == 18 and outputs["grid"] == outputs["alone"]
    import adaptcli

    loaded = {run: adaptcli.load(tmp_path / f"{run}.safetensors").eval() for run in outputs}
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(loaded["grid"](images), loaded["alone"](images), rtol=0, atol=1e-5)


def test_without_the_cache_a_grid_runs_the_backbone_as_often_as_one_probe(image_shards, tmp_path, monkeypatch):
    """Training and validation: one backbone pass per batch for all probes (the patch embedding counts them)."""
    from timm.layers import PatchEmbed

    calls = []
    forward = PatchEmbed.forward
    monkeypatch.setattr(PatchEmbed, "forward", lambda self, x: calls.append(1) or forward(self, x))
    counts = {}
    for name, extra in (("grid", GRID), ("one", ["--set", "method.heads=4", "--set", "train.epochs=2"])):
        calls.clear()
        result = finetune(image_shards, tmp_path / name, *extra, "--set", "train.feature_cache=false")
        assert result.exit_code == 0, result.output
        counts[name] = len(calls)
    summary = json.loads((tmp_path / "grid" / "summary.json").read_text())
    assert summary["feature_cache"] is False and len(summary["probes"]) == 2
    assert counts["grid"] == counts["one"] >= summary["steps"] + 2  # 12 training batches, validation's too


def test_without_a_validation_split_the_lowest_training_loss_is_kept(image_shards, tmp_path):
    result = finetune(image_shards, tmp_path / "run", *GRID, "--set", "data.val_split=null")
    assert result.exit_code == 0, result.output
    probes = json.loads((tmp_path / "run" / "summary.json").read_text())["probes"]
    assert [p["chosen"] for p in probes] == [False, True] and probes[1]["final_loss"] < probes[0]["final_loss"]
    assert "kept: no validation split: the lowest training loss of the last epoch" in result.output


@pytest.mark.parametrize("cache", ["true", "false"])
def test_a_stopped_grid_run_resumes_to_the_files_of_an_uninterrupted_one(image_shards, tmp_path, monkeypatch, cache):
    args = [*GRID, "--set", f"train.feature_cache={cache}", "--set", "train.save_every_steps=2"]
    straight = finetune(image_shards, tmp_path / "straight", *args)
    assert straight.exit_code == 0, straight.output

    asked = []

    def stop_at_the_third_step(self, accelerator):  # as a SIGTERM after step 3 of epoch 1 (6 steps an epoch)
        asked.append(1)
        self.received = "SIGTERM" if len(asked) == 3 else None
        return self.received is not None

    with monkeypatch.context() as patched:
        patched.setattr(StopSignals, "requested", stop_at_the_third_step)
        stopped = finetune(image_shards, tmp_path / "run", *args)
    assert stopped.exit_code == 143, stopped.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["state"] == "interrupted" and info["epoch"] == 0 and info["step"] == 3
    saved = json.loads((tmp_path / "run" / "checkpoints" / info["checkpoint"] / "state.json").read_text())
    assert len(saved["probe_loss_sums"]) == 2  # both probes' running losses, as their weights

    resumed = finetune(image_shards, tmp_path / "run", *args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    for name in ("best.safetensors", "trainable.safetensors"):
        assert_same_tensors(tmp_path / "straight" / name, tmp_path / "run" / name)
    a, b = (json.loads((tmp_path / run / "summary.json").read_text())["probes"] for run in ("straight", "run"))
    assert [p["best_val_top1"] for p in a] == [p["best_val_top1"] for p in b]
    assert [p["final_loss"] for p in a] == pytest.approx([p["final_loss"] for p in b], abs=1e-6)


@pytest.mark.parametrize("setting, message", [
    ("method.lrs=[]", "method.lrs=[] is out of range (expected at least 1 value(s), each > 0)"),
    ("method.lrs=[0.001, -0.003]", "method.lrs=[0.001, -0.003] is out of range (expected at least 1 value(s), each > 0)"),
    ("method.weight_decays=[-1.0]", "method.weight_decays=[-1.0] is out of range"),
    ("train.ema=0.99", "train.ema averages one model, but method.lrs x method.weight_decays train 2 probes"),
])
def test_bad_grids_are_refused_in_one_line_before_any_work(image_shards, tmp_path, setting, message):
    before = sorted(p.name for p in image_shards.iterdir())
    result = finetune(image_shards, tmp_path / "run", "--set", "method.heads=4", "--set", "method.lrs=[0.001, 0.003]",
                      "--set", setting)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and sorted(p.name for p in image_shards.iterdir()) == before


def test_inspect_params_counts_every_probe_of_the_grid():
    def count(*extra):
        result = runner.invoke(app, ["inspect-params", "--model", "vit_base_patch16_224", "--method", "attentive_probe",
                                     "--num-classes", "100", "--json", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    one = count()
    grid = count("--set", "method.lrs=[5.0e-3, 3.0e-3, 1.0e-3, 3.0e-4, 1.0e-4]",
                 "--set", "method.weight_decays=[0.01, 0.1, 0.4, 0.8]")
    assert (one["method_params"], one["trainable_params"]) == (27_761_664, 27_838_564)  # docs/methods.md
    assert grid["probes"] == 20 and "probes" not in one
    assert (grid["method_params"], grid["head_params"], grid["trainable_params"]) == (
        20 * 27_761_664, 20 * one["head_params"], 20 * 27_838_564)
    assert grid["backbone_params"] == one["backbone_params"]


def test_a_multi_label_grid_selects_on_validation_map(tmp_path):
    import numpy as np

    from tests.engine.test_multilabel import CONCEPTS, write_list

    rng = np.random.default_rng(1)
    rows = [("pics", [c for c in CONCEPTS if rng.random() < 0.5] or ["sky"],
             "train" if i < 20 else "validation" if i < 28 else "test") for i in range(36)]
    shards = tmp_path / "shards"
    prepared = runner.invoke(app, ["prepare", "imagelist", str(write_list(tmp_path / "src", rows)), "--shards",
                                   str(shards), "--workers", "0", "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    result = finetune(shards, tmp_path / "run", *GRID)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metric"] == "mAP" and len(summary["probes"]) == 2
    kept = next(p for p in summary["probes"] if p["chosen"])
    assert kept["best_val_mAP"] == summary["best_val_mAP"] == max(p["best_val_mAP"] for p in summary["probes"])
    assert "val mAP" in result.output and "<- kept" in result.output
