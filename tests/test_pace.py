"""PACE (train.pace_lambda, train.pace_sigma) against the official formulation (MaxwellYaoNi/PACE).

The reference below is written from the official code's equations, not from adaptcli's hooks:
``pace/pace_ops.py`` ``MultiplicativeNoiseAdapter.forward`` (``base(x) + adapter(x) * z``, ``z =
randn(B, 1, C) * sigma + 1``, drawn only when training and sigma > 0), ``compute_loss_pace``
(``CE(logits1, y) + lbd * (logits1 - logits2).square().sum(-1).mean()``), and ``train.py``'s sigma per
block id (``[0] * block_start + linspace(0, sigma, num_blocks - block_start + 1)[-1:0:-1]``, the head
the last block id, ``block_start = 1`` for ViT-B); LoRA is the official ``LoRAadd_Linear``
(``forward_adapter = B A x``; peft adds the constant scaling).
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from adaptcli.config.recipes import resolve
from adaptcli.engine.pace_step import consistency_loss, noisy_passes
from adaptcli.errors import ConfigError
from adaptcli.methods import apply_method
from adaptcli.methods.pace import install_pace_noise, pace_noise_of
from adaptcli.methods.peft_tuners.config import LoraOptions
from adaptcli.methods.registry import all_methods, method_spec
from tests.models.test_backbone_families import FAMILIES
from tests.models.test_backbone_families import adapted as family_adapted
from tests.models.test_backbone_families import batch as family_batch

SIGMA, LAMBDA, DEPTH, CLASSES = 1.2, 0.7, 4, 5


def tiny_vit(drop_path: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(
        img_size=16, patch_size=8, embed_dim=16, depth=DEPTH, num_heads=2, num_classes=CLASSES,
        drop_path_rate=drop_path)


def moved_from_init(model: nn.Module) -> None:
    """Every trainable tensor (LoRA's B starts at zero) moved to random values."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.3)


def official_sigmas(sigma: float, num_block_ids: int, block_start: int) -> np.ndarray:
    return np.concatenate([np.zeros(block_start), np.linspace(0, sigma, num_block_ids - block_start + 1)[-1:0:-1]])


def official_block_id(name: str) -> int:
    """The official ``get_adapters_and_block_ids`` for a ViT: the block's number, the head the last id."""
    numbers = [int(t) for t in name.split(".") if t.isnumeric()]
    return DEPTH if "head" in name else numbers[0]


class OfficialNoise:
    """``MultiplicativeNoiseAdapter`` on peft's LoRA layers and the head, as forward hooks that recompute the
    layer as the official ``base + adapter * z`` over the doubled batch.

    ``z`` for the doubled batch is the two passes' draws side by side: the generator is read in adaptcli's
    order (every site of pass 1, then of pass 2), so both sides multiply by the same numbers.
    """

    def __init__(self, model: nn.Module, seed: int, batch: int):
        generator = torch.Generator().manual_seed(seed)
        sigmas = official_sigmas(SIGMA, DEPTH + 1, block_start=1)
        sites = [(name, module, float(sigmas[official_block_id(name)])) for name, module in model.named_modules()
                 if name.endswith("attn.qkv") or name == "head"]
        noisy = [(name, module, sigma) for name, module, sigma in sites if sigma > 0]
        width = {name: (module.base_layer.out_features if hasattr(module, "base_layer") else module.out_features)
                 for name, module, _ in noisy}
        shape = {name: (batch, 1, width[name]) if name != "head" else (batch, width[name]) for name, _, _ in noisy}
        draws = [[torch.randn(shape[name], generator=generator, dtype=torch.float64) for name, _, _ in noisy]
                 for _ in range(2)]
        for index, (name, module, sigma) in enumerate(noisy):
            z = torch.cat([draws[0][index], draws[1][index]]) * sigma + 1
            module.register_forward_hook(self.hook(z))
        self.noisy = [name for name, _, _ in noisy]

    @staticmethod
    def hook(z: torch.Tensor):
        def forward(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            x = args[0]
            if hasattr(module, "base_layer"):  # peft LoRA: base W x + b, adapter B A x * scaling
                base = F.linear(x, module.base_layer.weight, module.base_layer.bias)
                adapter = module.lora_B["default"](module.lora_A["default"](x)) * module.scaling["default"]
            else:  # HeadLinear: base 0, the whole head is the adapter
                base, adapter = 0, F.linear(x, module.weight, module.bias)
            return base + adapter * z
        return forward


def lora_pair() -> tuple[nn.Module, nn.Module]:
    model = tiny_vit()
    apply_method(model, "lora", LoraOptions(r=4, alpha=8))
    model.double()
    moved_from_init(model)
    return model, copy.deepcopy(model)


def test_lora_gradients_equal_the_official_formulation_in_float64():
    ours, reference = lora_pair()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 3, 4])
    install_pace_noise(ours, "lora", SIGMA)
    ours.train()
    torch.manual_seed(5)
    first, second = noisy_passes(ours, x, two=True)
    loss = F.cross_entropy(first, y) + LAMBDA * consistency_loss(first, second)
    loss.backward()

    torch.manual_seed(5)
    seed = int(torch.randint(0, 2**62, ()))  # the step's noise seed, drawn as the step draws it
    official_noise = OfficialNoise(reference, seed, batch=len(x))
    assert official_noise.noisy == ["blocks.1.attn.qkv", "blocks.2.attn.qkv", "blocks.3.attn.qkv", "head"]
    reference.train()
    logits = reference(torch.cat([x, x]))  # compute_loss_pace: one pass over the doubled batch
    logits_1, logits_2 = torch.chunk(logits, 2)
    official = F.cross_entropy(logits_1, y) + LAMBDA * (logits_1 - logits_2).square().sum(dim=-1).mean()
    official.backward()

    assert first.dtype == torch.float64
    assert torch.allclose(first, logits_1, rtol=0, atol=1e-12) and torch.allclose(second, logits_2, rtol=0, atol=1e-12)
    assert not torch.allclose(first, second)  # the noise is there
    assert loss.item() == pytest.approx(official.item(), rel=1e-12)
    trained = [(name, p) for name, p in ours.named_parameters() if p.requires_grad]
    assert len(trained) == 2 * DEPTH + 2  # lora_A, lora_B per block, the head's weight and bias
    reference_params = dict(reference.named_parameters())
    for name, param in trained:
        expected = reference_params[name].grad
        assert param.grad is not None and torch.count_nonzero(param.grad) > 0, name
        assert torch.allclose(param.grad, expected, rtol=1e-10, atol=1e-12), name


def test_noise_distribution_and_sigma_per_block_are_the_official_ones():
    model = tiny_vit()
    apply_method(model, "lora", LoraOptions(r=4, alpha=8))
    noise = install_pace_noise(model, "lora", SIGMA)
    expected = official_sigmas(SIGMA, DEPTH + 1, block_start=1)
    for name, sigma in noise.sigmas.items():
        assert sigma == pytest.approx(expected[official_block_id(name)]), name
    assert noise.sigmas["head"] == pytest.approx(SIGMA / DEPTH)
    assert noise.sigmas["blocks.0.attn.qkv.lora_B.default"] == 0
    noise.reseed(3)
    draws = torch.stack([noise._noise(torch.zeros(2000, 7, 16), 0.5) for _ in range(5)])
    assert draws.shape == (5, 2000, 1, 16)  # one draw per sample and channel, shared by the tokens
    assert draws.mean().item() == pytest.approx(1.0, abs=0.01)
    assert draws.std().item() == pytest.approx(0.5, abs=0.01)


PACE_CASES = [("adaptformer", {"dropout": 0.0}), ("adaptformer", {"form": "sequential", "layernorm": "in"}),
              ("adapter_plus", {"drop_path": 0.0}), ("arc", {"dropout": 0.0}), ("arc_att", {"dropout": 0.0}),
              ("lora", {"target_modules": ["qkv", "fc2"]}), ("dora", {}), ("lora", {"qkv": "split"}),
              ("zeroi2v", {"dropout": 0.0})]


def adapted(method: str, options: dict, drop_path: float = 0.0) -> nn.Module:
    model = tiny_vit(drop_path)
    apply_method(model, method, method_spec(method).options(**options))
    model.double()
    moved_from_init(model)
    return model


def test_every_method_that_claims_pace_is_covered_here():
    assert {name for name, _ in PACE_CASES} == {spec.name for spec in all_methods() if spec.pace}


@pytest.mark.parametrize("method,options", PACE_CASES, ids=[f"{m}-{o}" for m, o in PACE_CASES])
def test_the_noise_multiplies_the_adapter_output_per_sample_and_channel(method, options):
    model = adapted(method, options)
    plain = copy.deepcopy(model)
    noise = install_pace_noise(model, method, SIGMA)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    model.eval(), plain.eval()
    assert torch.equal(model(x), plain(x))  # evaluation never sees the noise

    seen: dict[str, list] = {}
    for site in noise.sites:
        if noise.sigmas[site.name] == 0:
            continue
        site.module.register_forward_hook(  # before PACE's hook: the clean output and the frozen part
            lambda m, args, out, site=site: seen.setdefault(site.name, []).append(
                (out.detach(), None if site.base is None else site.base(args).detach())), prepend=True)
        site.module.register_forward_hook(  # after it: the perturbed output
            lambda m, args, out, site=site: seen[site.name].append(out.detach()))
    model.train()
    noise.reseed(7)
    model(x)
    depths = set()
    for site in noise.sites:
        sigma = noise.sigmas[site.name]
        if sigma == 0:
            assert site.name not in seen
            continue
        (clean, base), perturbed = seen[site.name]
        base = 0 if base is None else base
        delta, noisy_delta = clean - base, perturbed - base
        assert delta.abs().max() > 1e-3, site.name  # weights moved: the adapter has an output
        if delta.ndim == 3:  # tokens share the sample's draw: z = noisy / clean is constant along tokens
            z = noisy_delta / delta
            assert torch.allclose(z, z[:, :1].expand_as(z), rtol=1e-6, atol=1e-6), site.name
            assert 0.1 * sigma < (z[:, 0] - 1).std() < 3 * sigma, site.name
        depths.add(site.name)
    assert len(depths) >= DEPTH  # the noisy blocks 1..3 and the head


def test_the_two_passes_share_drop_path_and_dropout_masks():
    model = adapted("lora", {"dropout": 0.3}, drop_path=0.5)
    noise = install_pace_noise(model, "lora", SIGMA)
    noise.remove()  # without the noise the passes must be identical
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    model.train()
    assert not torch.equal(model(x), model(x))  # drop-path and dropout are on
    first, second = noisy_passes(model, x, two=True)
    assert torch.equal(first, second)
    assert consistency_loss(first, second).item() == 0


def test_a_step_trains_every_parameter_and_the_noise_changes_every_step():
    model = adapted("adaptformer", {"dropout": 0.0})
    noise = install_pace_noise(model, "adaptformer", SIGMA)
    assert pace_noise_of(model) is noise
    model.train()
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    torch.manual_seed(0)
    a = noisy_passes(model, x, two=True)
    b = noisy_passes(model, x, two=True)
    assert not torch.equal(a[0], b[0]) and not torch.equal(a[0], a[1])
    torch.manual_seed(0)
    again = noisy_passes(model, x, two=True)  # the same global state: the same noise (exact resume)
    assert torch.equal(a[0], again[0]) and torch.equal(a[1], again[1])
    loss = F.cross_entropy(again[0], torch.tensor([0, 1, 2, 3])) + LAMBDA * consistency_loss(*again)
    loss.backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.count_nonzero(param.grad) > 0, name


@pytest.mark.parametrize("method", [spec.name for spec in all_methods() if not spec.pace])
def test_methods_without_an_adapter_output_refuse_pace_in_one_line(method):
    with pytest.raises(ConfigError, match=f"{re.escape(method)} has no adapter output for PACE"):
        resolve(None, method, ["train.pace_lambda=1", "train.pace_sigma=1.2"])


def test_pace_settings_are_range_checked():
    with pytest.raises(ConfigError, match="needs train.pace_sigma > 0"):
        resolve(None, "lora", ["train.pace_lambda=1"])
    with pytest.raises(ConfigError, match="out of range"):
        resolve(None, "lora", ["train.pace_sigma=-0.5"])
    config = resolve(None, "lora", ["train.pace_lambda=1", "train.pace_sigma=1.2"])
    assert (config.train.pace_lambda, config.train.pace_sigma) == (1.0, 1.2)
    assert resolve(None, "lora").train.pace_sigma == 0  # off by default


def test_the_cli_refuses_pace_for_linear_probing_in_one_line():
    result = subprocess.run([sys.executable, "-m", "adaptcli", "config", "--recipe", "quick", "--method", "linear",
                             "--set", "train.pace_lambda=1", "--set", "train.pace_sigma=1.2"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "linear has no adapter output for PACE's noise" in lines[0]
    assert "Traceback" not in result.stderr


def test_turning_the_noise_off_in_a_pace_recipe_names_how_to_train_without_pace():
    with pytest.raises(ConfigError, match="to train without PACE, set train.pace_lambda=0 too"):
        resolve("vtab_pace", "lora", ["train.pace_sigma=0"])
    assert resolve("vtab_pace", "lora", ["train.pace_sigma=0", "train.pace_lambda=0"]).train.pace_lambda == 0


def test_the_pace_recipes_hold_the_official_commands_values():
    """Vision/README.md: cifar `--lr 1e-03 --wd 1e-4 --rank 10 --epoch 300 --lbd 1 --sigma 1.2`, flowers
    `--lr 5e-03 --wd 1e-4 --rank 18 --epoch 100 --lbd 1 --sigma 1.5`; train.py: batch 64, AdamW, warm-up 10
    epochs from 1e-6, cosine to 1e-5 per epoch (no warm-up prefix), drop path 0.1."""
    for recipe, lr, epochs, rank, sigma in (("vtab_pace", 1e-3, 300, 10, 1.2), ("fgvc_pace", 5e-3, 100, 18, 1.5)):
        config = resolve(recipe, "lora")
        t = config.train
        assert (t.pace_lambda, t.pace_sigma, t.lr, t.weight_decay, t.epochs, t.batch_size) == (1.0, sigma, lr, 1e-4, epochs, 64)
        assert (t.optimizer, t.warmup_epochs, t.warmup_lr, t.min_lr, t.schedule_unit, t.warmup_prefix) == \
            ("adamw", 10, 1e-6, 1e-5, "epoch", False)
        assert (config.method_options.r, config.method_options.alpha, config.model.drop_path) == (rank, rank, 0.1)
        assert resolve(recipe, "linear").train.pace_lambda == 0  # no adapter output: the recipe trains it plainly


FAMILY_CASES = [(family, spec.name) for family in FAMILIES for spec in all_methods() if spec.pace
                and not (family.startswith("eva02") and spec.name == "zeroi2v")]  # refused there (families test)


@pytest.mark.parametrize("family,method", FAMILY_CASES, ids=[f"{f}-{m}" for f, m in FAMILY_CASES])
def test_pace_trains_on_every_backbone_family(family, method):
    """CLIP, DINOv2 (LayerScale, registers), SigLIP (attention-pool head), EVA-02 (separate q/k/v, RoPE),
    DeiT-III: every noisy site fires in training, never in evaluation, and every trained tensor gets a gradient."""
    model, _ = family_adapted(family, method)
    inputs, labels = family_batch(family)
    clean = model(inputs)
    noise = install_pace_noise(model, method, SIGMA)
    fired: set[str] = set()
    for site in noise.sites:
        site.module.register_forward_hook(lambda m, a, o, name=site.name: fired.add(name) if m.training else None)
    assert torch.equal(model.eval()(inputs), clean)
    model.train()
    first, second = noisy_passes(model, inputs, two=True)
    assert fired == set(noise.sigmas)  # every site is on the forward path
    assert sum(sigma > 0 for sigma in noise.sigmas.values()) > 1
    assert not torch.allclose(first, second)  # and the noisy ones perturb it
    (F.cross_entropy(first, labels) + LAMBDA * consistency_loss(first, second)).backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name
