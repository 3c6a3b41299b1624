"""The classifier's optional input norm, for every method: ``BatchNorm1d(D, affine=False)`` then Linear.

AdaptFormer's training scripts put this BatchNorm before the classifier of every method (the MAE
linear-probing head); ``head.norm: bn`` reproduces that. At inference it folds into the Linear.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.models.blocks import classifier, qualified_name, set_submodule


class NormHead(nn.Sequential):
    """``BatchNorm1d(D, affine=False, eps=1e-6)`` then the classifier's own Linear (weights kept)."""

    def __init__(self, linear: nn.Linear):
        super().__init__(nn.BatchNorm1d(linear.in_features, affine=False, eps=1e-6), linear)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        """The equivalent single Linear at inference (running statistics folded in)."""
        norm, linear = self[0], self[1]
        inv_std = torch.rsqrt(norm.running_var + norm.eps)
        out = nn.Linear(linear.in_features, linear.out_features, bias=True).to(linear.weight)
        out.weight.copy_(linear.weight * inv_std)
        bias = linear.bias if linear.bias is not None else torch.zeros_like(out.bias)
        out.bias.copy_(bias - out.weight @ norm.running_mean)
        return out


def add_head_norm(model: nn.Module) -> None:
    """Put the BatchNorm in front of the model's Linear classifier (nothing if it already has one)."""
    head = classifier(model)
    if isinstance(head, NormHead):
        return
    if not isinstance(head, nn.Linear):
        raise ValueError(f"head.norm=bn needs a Linear classifier, found {type(head).__name__}")
    set_submodule(model, qualified_name(model, head), NormHead(head))


def fold_head_norms(model: nn.Module) -> None:
    """Replace every :class:`NormHead` by its folded Linear (the plain architecture again)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, NormHead):
            set_submodule(model, name, module.folded())
