"""The lr schedule: per step (adaptcli's default) or per epoch with timm train.py's warm-up, no prefix and
cool-down (SSF's scripts), and Adapter+'s per-epoch schedule to lr/1000."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import TrainConfig, resolve
from adaptcli.engine.optim import build_scheduler
from adaptcli.errors import ConfigError
from tests.engine.conftest import TINY, image_shards  # noqa: F401


def lrs_per_step(train: TrainConfig, steps_per_epoch: int, lr: float) -> list[float]:
    """The lr of every optimiser step of the run, driven like the trainer drives it."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(optimizer, train, steps_per_epoch, lr)
    seen = []
    for step in range(train.epochs * steps_per_epoch):
        seen.append(optimizer.param_groups[0]["lr"])
        scheduler.step_update(num_updates=step + 1)
    return seen


def test_default_schedule_is_unchanged_per_step_warmup_then_cosine():
    train = TrainConfig(epochs=4, warmup_epochs=1, lr=0.1, min_lr=0.0)
    seen = lrs_per_step(train, 5, 0.1)
    assert seen[0] == pytest.approx(0.1 / 6)
    assert seen[5] == pytest.approx(0.1)  # the cosine starts after the 5 warm-up steps
    assert len(set(seen[5:10])) == 5  # changes every step
    assert seen[-1] == pytest.approx(0.5 * 0.1 * (1 + math.cos(math.pi * 14 / 15)))


def test_ssf_schedule_is_timm_train_py_per_epoch_no_prefix_with_cooldown():
    """SSF's scripts: timm 0.6 train.py, ``--warmup-lr 1e-7 --warmup-epochs 10 --min-lr 1e-8`` with its
    default 10 cool-down epochs after a 100-epoch cosine that counts from epoch 0."""
    config = resolve("vtab", "ssf", task="dtd")
    train = config.train
    lr = train.lr
    per_epoch = lrs_per_step(train, 3, lr)[::3]
    steps = lrs_per_step(train, 3, lr)
    assert len(per_epoch) == 110 and all(steps[3 * e] == steps[3 * e + 2] for e in range(110))
    for epoch, value in enumerate(per_epoch):
        if epoch < 10:
            want = 1e-7 + epoch * (lr - 1e-7) / 10
        elif epoch < 100:
            want = 1e-8 + 0.5 * (lr - 1e-8) * (1 + math.cos(math.pi * epoch / 100))
        else:
            want = 1e-8
        assert value == pytest.approx(want, rel=1e-9, abs=1e-15), epoch


def pl_bolts_closed_form(epoch: int, lr: float, warmup: int, epochs: int) -> float:
    """visinf/adapter_plus modeling/lr_scheduler.py (LinearWarmupCosineAnnealingLR), closed form, with
    warmup_start_lr = lr/100 and eta_min = lr/1000 (conf/train/default.yaml)."""
    start, eta = lr / 100, lr / 1000
    if epoch < warmup:
        return start + epoch * (lr - start) / (warmup - 1)
    return eta + 0.5 * (lr - eta) * (1 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))


def test_adapter_plus_schedule_matches_the_official_cosine_after_warmup():
    train = resolve("vtab", "adapter_plus").train
    per_epoch = lrs_per_step(train, 2, train.lr)[::2]
    official = [pl_bolts_closed_form(e, train.lr, 10, 100) for e in range(100)]
    assert per_epoch[10:] == pytest.approx(official[10:], rel=1e-9)
    # The warm-up is timm's: it starts at the same lr/100 and reaches lr one epoch later (documented).
    assert per_epoch[0] == pytest.approx(official[0])
    assert per_epoch[9] == pytest.approx(train.lr / 100 + 9 * (train.lr - train.lr / 100) / 10)
    assert per_epoch[-1] > train.lr / 1000


def test_mid_epoch_resume_lands_on_the_same_lr():
    train = TrainConfig(epochs=6, warmup_epochs=2, lr=0.1, schedule_unit="epoch", warmup_lr=1e-3)
    straight = lrs_per_step(train, 4, 0.1)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    first = build_scheduler(optimizer, train, 4, 0.1)
    for step in range(9):
        first.step_update(num_updates=step + 1)
    state = first.state_dict()
    optimizer2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    second = build_scheduler(optimizer2, train, 4, 0.1)
    second.load_state_dict(state)
    second.step_update(num_updates=10)
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(straight[10])


def test_cooldown_must_leave_epochs_to_train():
    with pytest.raises(ConfigError, match="cooldown_epochs.*below train.epochs"):
        resolve(None, "linear", ["train.epochs=5", "train.cooldown_epochs=5"])


def test_layer_decay_gives_each_block_its_scaled_lr():
    """timm's param_groups_layer_decay on a 4-block ViT: embedding layer 0, block i layer i + 1 (the final
    norm with the last block), head layer 5; the scheduler applies lr_scale = decay ** (5 - layer)."""
    import timm

    from adaptcli.methods import apply_method

    model = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=4, num_classes=3)
    apply_method(model, "full")
    train = TrainConfig(optimizer="adamw", lr=1e-3, layer_decay=0.75, warmup_epochs=0, epochs=2)
    from adaptcli.engine.optim import build_optimizer

    optimizer = build_optimizer(model, train, 1e-3)
    build_scheduler(optimizer, train, 4, 1e-3)
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    params = dict(model.named_parameters())
    assert lr_of[id(params["head.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(params["norm.weight"])] == pytest.approx(1e-3 * 0.75)
    for block in range(4):
        expected = 1e-3 * 0.75 ** (4 - block)
        assert lr_of[id(params[f"blocks.{block}.attn.qkv.weight"])] == pytest.approx(expected), block
        assert lr_of[id(params[f"blocks.{block}.norm1.bias"])] == pytest.approx(expected), block
    assert lr_of[id(params["patch_embed.proj.weight"])] == pytest.approx(1e-3 * 0.75 ** 5)
    assert lr_of[id(params["cls_token"])] == pytest.approx(1e-3 * 0.75 ** 5)
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay_of[id(params["cls_token"])] == 0 and decay_of[id(params["blocks.0.norm1.bias"])] == 0


def test_layer_decay_groups_the_video_vit_by_block():
    import timm

    import adaptcli.models.architectures  # noqa: F401
    from adaptcli.engine.optim import build_optimizer
    from adaptcli.methods import apply_method

    model = timm.create_model("video_vit_test", num_classes=3)
    apply_method(model, "adaptformer")
    train = TrainConfig(optimizer="adamw", lr=1.0, layer_decay=0.5, warmup_epochs=0, epochs=2)
    optimizer = build_optimizer(model, train, 1.0)
    build_scheduler(optimizer, train, 4, 1.0)
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    params = dict(model.named_parameters())
    depth = len(model.blocks)
    for block in range(depth):  # the adapters inside a block take that block's rate
        assert lr_of[id(params[f"blocks.{block}.adaptmlp.down.weight"])] == pytest.approx(0.5 ** (depth - block))
    assert lr_of[id(params["head.weight"])] == pytest.approx(1.0)
    assert lr_of[id(params["fc_norm.weight"])] == pytest.approx(1.0)  # with the head, as VideoMAE's optim_factory


def videomae_layer_id(name: str, num_layers: int) -> int:
    """MCG-NJU/VideoMAE optim_factory.py get_num_layer_for_vit (lines 24-35), transcribed; ``num_layers`` is
    its ``num_max_layer``, depth + 2."""
    if name in ("cls_token", "mask_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks"):
        return int(name.split(".")[1]) + 1
    return num_layers - 1  # fc_norm and head (rel_pos_bias too, which the ViT has not)


def test_full_fine_tuning_layer_decay_is_videomaes_for_every_parameter():
    """run_class_finetuning.py line 417: scale of layer i = layer_decay ** (depth + 1 - i), i in 0..depth+1."""
    import timm

    import adaptcli.models.architectures  # noqa: F401
    from adaptcli.engine.optim import build_optimizer

    model = timm.create_model("video_vit_test", num_classes=3)
    decay, depth = 0.75, len(model.blocks)
    scales = [decay ** (depth + 1 - i) for i in range(depth + 2)]
    optimizer = build_optimizer(model, TrainConfig(optimizer="adamw", lr=1.0, layer_decay=decay), 1.0)
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    got = {name: scale_of[id(p)] for name, p in model.named_parameters()}
    expected = {name: scales[videomae_layer_id(name, depth + 2)] for name in got}
    assert got == pytest.approx(expected)
    assert got["fc_norm.weight"] == got["head.weight"] == 1.0


def warmup_cosine(t: int, *, lr: float, warmup_lr: float, min_lr: float, warmup: int, total: int) -> float:
    """timm's CosineLRScheduler with ``warmup_prefix``: linear from ``warmup_lr`` over ``warmup`` updates,
    then the cosine from ``lr`` to ``min_lr`` over the rest; ``t`` updates done (steps or epochs)."""
    if t < warmup:
        return warmup_lr + t * (lr - warmup_lr) / warmup
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


@pytest.mark.parametrize("unit", ["step", "epoch"])
def test_the_logged_lr_is_the_one_each_step_trained_with(image_shards, tmp_path, unit):  # noqa: F811
    """3 epochs of 2 steps, 2 warm-up epochs: the lr the optimiser holds when each step applies it, against
    timm's formula, and each epoch's logged lr against its last step's (it was the next step's)."""
    applied: list[float] = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: applied.append(optimizer.param_groups[0]["lr"]))
    try:
        result = CliRunner().invoke(app, [
            "finetune", "--method", "linear", "--recipe", "quick", "--data", str(image_shards),
            "--out", str(tmp_path / "run"), *TINY, "--set", "train.epochs=3", "--set", "train.max_steps_per_epoch=2",
            "--set", "train.warmup_epochs=2", "--set", "train.lr=0.01", "--set", "train.warmup_lr=0.0001",
            "--set", "train.min_lr=0.00001", "--set", f"train.schedule_unit={unit}"])
    finally:
        hook.remove()
    assert result.exit_code == 0, result.output
    assert len(applied) == 6
    per_step = unit == "step"
    for step, value in enumerate(applied):
        t = step if per_step else step // 2
        want = warmup_cosine(t, lr=0.01, warmup_lr=1e-4, min_lr=1e-5, warmup=4 if per_step else 2,
                             total=6 if per_step else 3)
        assert value == pytest.approx(want, rel=1e-9), step
    assert applied[0] == pytest.approx(1e-4, rel=1e-9)  # the first step trains at the warm-up lr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["lr"]) for r in records if r["event"] == "train"]
    assert logged == [(2, pytest.approx(applied[1], rel=1e-9)), (4, pytest.approx(applied[3], rel=1e-9)),
                      (6, pytest.approx(applied[5], rel=1e-9))]


def test_a_warmup_as_long_as_the_run_is_refused_before_any_work(tmp_path):
    """The VTAB recipe's 10 warm-up epochs with --set train.epochs=2: one line naming both keys, exit 2."""
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["finetune", "--method", "arc", "--recipe", "vtab", "--data", str(data),
                                      "--out", str(tmp_path / "run"), "--set", "train.epochs=2", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "error: train.warmup_epochs (10) must be below train.epochs (2): the warm-up is the first part of the "
        "schedule; lower train.warmup_epochs or raise train.epochs"]
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"train.warmup_epochs \(10\) must be below train.epochs - "
                                          r"train.cooldown_epochs \(10\)"):
        resolve("vtab", "ssf", ["train.epochs=20"])  # 10 of the 20 epochs are the cool-down
