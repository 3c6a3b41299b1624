"""``MethodSpec.unused_parameters`` (DDP's ``find_unused_parameters``) is true exactly for the methods
that leave some trainable parameter without a gradient in a training step, on every test backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adaptcli.errors import UnsupportedModelError
from adaptcli.methods import apply_method
from adaptcli.methods.registry import all_methods, method_spec
from adaptcli.models.build import create_backbone
from adaptcli.models.config import ModelConfig
from tests.models.backbone_zoo import batch_for, build
from tests.method_cases import METHOD_CASES, MODELS, adapted_model, input_for

SWIN3D = ModelConfig(name="swin3d_t", img_size=28, num_frames=4)


def _unused(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Trainable parameters that one training forward/backward leaves without a gradient."""
    model.train()
    model(x).square().sum().backward()
    return [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]


def _on(kind: str, method: str, options: dict) -> nn.Module | None:
    model = create_backbone(SWIN3D, num_classes=5) if kind == "swin3d" else build(kind, num_classes=5)
    try:
        apply_method(model, method, method_spec(method).options(**options))
    except UnsupportedModelError:  # e.g. VPT on Swin: nothing to check there
        return None
    return model


@pytest.mark.parametrize("method", [spec.name for spec in all_methods()])
def test_unused_parameters_flag_is_the_truth(method: str) -> None:
    cases = [options for name, options in METHOD_CASES if name == method]
    assert cases, f"{method} has no case in tests/method_cases.py"
    unused: list[str] = []
    for options in cases:
        for name in MODELS:
            model = adapted_model(name, method, options)
            unused += _unused(model, input_for(model))
    for kind in ("video_vit", "swin", "swin3d"):
        model = _on(kind, method, cases[0])
        if model is not None:
            x = torch.randn(2, 3, 4, 28, 28) if kind == "swin3d" else batch_for(model)
            unused += _unused(model, x)
    assert method_spec(method).unused_parameters == bool(unused), unused[:5]
