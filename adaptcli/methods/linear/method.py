"""Linear probing (MAE protocol): the classifier becomes BatchNorm (no affine) + Linear."""

from __future__ import annotations

from typing import Any

from torch import nn

from adaptcli.methods.base import Method
from adaptcli.methods.head import NormHead, fold_head_norms
from adaptcli.models.blocks import classifier, qualified_name, set_submodule


class ProbeHead(NormHead):
    """The MAE probe: :class:`NormHead` with the Linear re-initialised (trunc-normal std 0.01, zero bias)."""

    def __init__(self, linear: nn.Linear):
        super().__init__(linear)
        nn.init.trunc_normal_(linear.weight, std=0.01)
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)


class Linear(Method):

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        head = classifier(model)
        if not isinstance(head, nn.Linear):
            raise ValueError(f"linear probing needs a Linear classifier, found {type(head).__name__}")
        set_submodule(model, qualified_name(model, head), ProbeHead(head))
        return []

    def merge(self, model: nn.Module) -> None:
        fold_head_norms(model)

