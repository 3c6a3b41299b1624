"""Linear probing (MAE protocol): the classifier becomes BatchNorm (no affine) + Linear."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptcli.methods.base import Method
from adaptcli.models.blocks import classifier, qualified_name, set_submodule


class ProbeHead(nn.Sequential):
    """``BatchNorm1d(D, affine=False, eps=1e-6)`` then ``Linear(D, C)`` (weight trunc-normal std 0.01)."""

    def __init__(self, linear: nn.Linear):
        norm = nn.BatchNorm1d(linear.in_features, affine=False, eps=1e-6)
        super().__init__(norm, linear)
        nn.init.trunc_normal_(linear.weight, std=0.01)
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        """The equivalent single Linear at inference (batch statistics folded in)."""
        norm, linear = self[0], self[1]
        inv_std = torch.rsqrt(norm.running_var + norm.eps)
        out = nn.Linear(linear.in_features, linear.out_features, bias=True)
        out = out.to(linear.weight)
        out.weight.copy_(linear.weight * inv_std)
        bias = linear.bias if linear.bias is not None else torch.zeros_like(out.bias)
        out.bias.copy_(bias - out.weight @ norm.running_mean)
        return out


class Linear(Method):

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        head = classifier(model)
        if not isinstance(head, nn.Linear):
            raise ValueError(f"linear probing needs a Linear classifier, found {type(head).__name__}")
        set_submodule(model, qualified_name(model, head), ProbeHead(head))
        return []

    def merge(self, model: nn.Module) -> None:
        for name, module in list(model.named_modules()):
            if isinstance(module, ProbeHead):
                set_submodule(model, name, module.folded())

