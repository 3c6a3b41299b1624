"""``train.loraplus_ratio`` (LoRA+): the same AdamW step as peft's ``create_loraplus_optimizer`` (the official
code's rule), through timm's scheduler and with layer decay; refused where nothing is a LoRA B factor."""

from __future__ import annotations

import pytest
import timm
import torch

from adaptcli.config import TrainConfig
from adaptcli.engine.loraplus import PAPER_RATIO
from adaptcli.engine.optim import build_optimizer, build_scheduler
from adaptcli.methods.apply import apply_method
from adaptcli.methods.peft_tuners.config import LoraOptions
from tests.export.conftest import finetune, invoke


def lora_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model("test_vit", num_classes=3, img_size=32).double()
    apply_method(model, "lora", LoraOptions(r=4))
    with torch.no_grad():  # move B away from its zero init, so both factors get gradients
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return model


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad()
    model(x).square().mean().backward()
    optimizer.step()


def test_one_step_equals_peft_loraplus_in_float64():
    from peft.optimizers import create_loraplus_optimizer

    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours, theirs = lora_model(), lora_model()
    train = TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=0.0, warmup_epochs=0, epochs=2,
                        loraplus_ratio=PAPER_RATIO)
    optimizer = build_optimizer(ours, train, train.lr)
    build_scheduler(optimizer, train, steps_per_epoch=5, lr=train.lr)  # timm's scheduler sets each group's lr
    reference = create_loraplus_optimizer(theirs, torch.optim.AdamW, lr=train.lr, loraplus_lr_ratio=PAPER_RATIO,
                                          weight_decay=0.0)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(ours.named_parameters())
    assert lrs[id(names["blocks.0.attn.qkv.lora_B.default.weight"])] == pytest.approx(16 * train.lr)
    assert lrs[id(names["blocks.0.attn.qkv.lora_A.default.weight"])] == pytest.approx(train.lr)
    step(ours, optimizer, x)
    step(theirs, reference, x)
    theirs_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        if param.requires_grad:
            assert torch.allclose(param, theirs_params[name], atol=1e-12, rtol=0), name
    # and off, the B factors would have moved differently: the test can fail
    plain = lora_model()
    plain_optimizer = build_optimizer(plain, TrainConfig(optimizer="adamw", lr=1e-3, weight_decay=0.0), 1e-3)
    step(plain, plain_optimizer, x)
    key = "blocks.0.attn.qkv.lora_B.default.weight"
    assert not torch.allclose(dict(plain.named_parameters())[key], theirs_params[key])


def test_the_ratio_multiplies_layer_decay():
    model = lora_model()
    train = TrainConfig(lr=1e-3, layer_decay=0.5, warmup_epochs=0, loraplus_ratio=4.0)
    optimizer = build_optimizer(model, train, train.lr)
    build_scheduler(optimizer, train, steps_per_epoch=5, lr=train.lr)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    a, b = (lrs[id(names[f"blocks.0.attn.qkv.lora_{x}.default.weight"])] for x in "AB")
    assert b == pytest.approx(4 * a) and a < train.lr  # block 0 decayed, B four times A


def test_a_lora_run_trains_with_loraplus_and_other_methods_are_refused(image_shards, tmp_path):
    run = finetune(image_shards, tmp_path / "lora", "lora", "--set", "train.loraplus_ratio=16")
    assert (run / "trainable.safetensors").is_file()
    refused = invoke("finetune", "--method", "arc", "--recipe", "quick", "--data", image_shards,
                     "--out", tmp_path / "arc", "--set", "train.loraplus_ratio=16")
    assert refused.exit_code == 2
    assert "train.loraplus_ratio=16 scales the lr of LoRA's B factors, and method arc trains none" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "arc").exists()
