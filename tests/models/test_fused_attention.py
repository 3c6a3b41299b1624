"""Every backbone attends with ``F.scaled_dot_product_attention`` in training, methods applied or not;
Video Swin's fused window attention equals torchvision's explicit one."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

from adaptcli.methods import apply_method
from adaptcli.methods.registry import method_spec
from adaptcli.models.blocks import transformer_blocks
from adaptcli.models.build import create_backbone
from adaptcli.models.config import ModelConfig
from adaptcli.models.window_attention import FusedShiftedWindowAttention3d

#: (model config, input shape): an image ViT, timm's Swin, the video ViT and Video Swin, all small.
BACKBONES = {
    "vit": (ModelConfig(name="vit_tiny_patch16_224", img_size=32), (2, 3, 32, 32)),
    "swin": (ModelConfig(name="swin_tiny_patch4_window7_224", img_size=64), (1, 3, 64, 64)),
    "video_vit": (ModelConfig(name="video_vit_test", img_size=32, num_frames=4), (2, 3, 4, 32, 32)),
    "swin3d": (ModelConfig(name="swin3d_t", img_size=28, num_frames=4), (1, 3, 4, 28, 28)),
}
METHODS = [None, "lora", "arc", "adaptformer", "vpt_deep"]


class FunctionCalls(TorchFunctionMode):
    """Counts the torch functions and tensor methods called in Python (nested calls are not seen)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls[getattr(func, "__name__", str(func))] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method", METHODS, ids=str)
@pytest.mark.parametrize("kind", list(BACKBONES))
def test_training_forward_uses_fused_attention_in_every_block(kind: str, method: str | None) -> None:
    config, shape = BACKBONES[kind]
    model = create_backbone(config, num_classes=3)
    if method is not None:
        if method.startswith("vpt") and kind.startswith("swin"):
            pytest.skip("prompt tokens need one flat sequence (no Swin)")
        apply_method(model, method, method_spec(method).options())
    model.train()
    with FunctionCalls() as mode:
        model(torch.randn(*shape)).sum().backward()
    assert mode.calls["scaled_dot_product_attention"] == len(transformer_blocks(model))
    assert mode.calls["softmax"] == 0  # no block fell back to explicit scores


def test_timm_explicit_attention_would_be_caught(monkeypatch) -> None:
    """The check above fails when timm is told to keep explicit attention (its TIMM_FUSED_ATTN=0)."""
    monkeypatch.setenv("TIMM_FUSED_ATTN", "0")
    model = create_backbone(BACKBONES["swin"][0], num_classes=3).train()
    with FunctionCalls() as mode:
        model(torch.randn(*BACKBONES["swin"][1]))
    assert mode.calls["scaled_dot_product_attention"] == 0 and mode.calls["softmax"] > 0


@pytest.mark.parametrize("shift", [(0, 0, 0), (1, 2, 2)], ids=["plain", "shifted"])
@pytest.mark.parametrize("size", [(4, 8, 8), (3, 6, 7), (1, 3, 3)], ids=["exact", "padded", "small"])
def test_fused_window_attention_equals_torchvision(shift, size) -> None:
    torch.manual_seed(0)
    args = dict(dim=32, window_size=[2, 4, 4], shift_size=list(shift), num_heads=4)
    stock, fused = ShiftedWindowAttention3d(**args), FusedShiftedWindowAttention3d(**args)
    assert list(stock.state_dict()) == list(fused.state_dict())
    fused.load_state_dict(stock.state_dict(), strict=True)
    x = torch.randn(2, *size, 32)
    outputs, grads = [], []
    for module in (stock, fused):
        module.train()
        inputs = x.clone().requires_grad_(True)
        out = module(inputs)
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append([inputs.grad, module.relative_position_bias_table.grad, module.qkv.weight.grad])
    assert (outputs[0] - outputs[1]).abs().max().item() <= 1e-5
    for a, b in zip(*grads):
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item())
