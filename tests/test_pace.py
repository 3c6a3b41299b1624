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
