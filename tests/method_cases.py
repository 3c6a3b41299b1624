"""The table of (model, method, options) that the method tests run through one tester."""

from __future__ import annotations

import weakref

import timm
import torch
from torch import nn

from adaptcli.methods import AdaptInfo, apply_method
from adaptcli.methods.registry import method_spec

MODELS = ["test_vit", "test_vit2", "vit_small_patch16_224"]
NUM_CLASSES = 7

METHOD_CASES: list[tuple[str, dict]] = [
    ("adaptformer", {}),
    ("adaptformer", {"form": "sequential", "layernorm": "in", "mid_dim": 8}),
    ("adaptformer", {"layers": [1, 3]}),
    ("arc", {}),
    ("arc", {"dim": 8, "layers": [0, 2]}),
    ("arc_att", {}),
    ("vpt_shallow", {"tokens": 3}),
    ("vpt_deep", {"tokens": 2}),
    ("adapter_plus", {}),
    ("adapter_plus", {"bottleneck": 4, "layers": [0, 2], "drop_path": 0.0}),
    ("bitfit", {}),
    ("bitfit", {"fc_norm": "all"}),
    ("ssf", {}),
    ("ssf", {"pooled_site": "fc_norm"}),
    ("lora", {}),
    ("lora", {"r": 4, "alpha": 16, "target_modules": ["qkv", "fc1"]}),
    ("dora", {}),
    ("lora", {"qkv": "split"}),
    ("lora", {"qkv": "split", "split_targets": ["v", "q"], "r": 4, "alpha": 2, "dropout": 0.1}),
    ("dora", {"qkv": "split", "split_targets": ["q", "k", "v"]}),
    ("peft", {"peft_type": "IA3", "peft_config": {"target_modules": ["qkv", "fc2"], "feedforward_modules": ["fc2"]}}),
    ("peft", {"peft_type": "LOHA", "peft_config": {"r": 4}}),
    ("zeroi2v", {}),
    ("zeroi2v", {"offsets": [-1], "mlp_ratio": 0.5, "scale": 1.0, "dropout": 0.0, "layers": [0, 2]}),
    ("linear", {}),
    ("attentive_probe", {}),
    ("attentive_probe", {"depth": 1, "heads": 4}),
    ("full", {}),
]


def case_id(case: tuple[str, dict]) -> str:
    method, options = case
    return method + "".join(f"-{k}={v}" for k, v in options.items())


def plain_model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    kwargs = {"img_size": 64} if name.startswith("vit_small") else {}
    return timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, **kwargs).eval()


#: What apply_method returned for each model adapted_model built (the tests keep it, as callers do).
ADAPT_INFO: weakref.WeakKeyDictionary[nn.Module, AdaptInfo] = weakref.WeakKeyDictionary()


def adapted_model(name: str, method: str, options: dict, seed: int = 0) -> nn.Module:
    model = plain_model(name, seed)
    ADAPT_INFO[model] = apply_method(model, method, method_spec(method).options(**options))
    return model.eval()


def info_of(model: nn.Module) -> AdaptInfo:
    """The :class:`AdaptInfo` of a model built by :func:`adapted_model`."""
    return ADAPT_INFO[model]


def input_for(model: nn.Module, batch: int = 2, seed: int = 1) -> torch.Tensor:
    size = model.patch_embed.img_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *size, generator=generator)


@torch.no_grad()
def randomise_method_params(model: nn.Module, scale: float = 0.2, seed: int = 3) -> None:
    """Move every method parameter away from its identity initialisation."""
    generator = torch.Generator().manual_seed(seed)
    for name in info_of(model).method_param_names:
        param = model.get_parameter(name)
        param.copy_(torch.randn(param.shape, generator=generator) * scale)
