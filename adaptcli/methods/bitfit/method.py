"""BitFit: nothing is added; the backbone's own bias tensors become the method's parameters.

The rule is the BitFit baselines' in the VPT, NOAH and V-PETL code: every tensor whose name contains
``bias`` (the head is the task's own, counted apart). On timm ViTs that is every ``.bias``; on Swin it
also takes ``relative_position_bias_table`` (200,760 on Swin-B, as those baselines count). The merged
model is the backbone with its trained biases, so merging changes nothing.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from adaptcli.methods.base import Method


class BitFit(Method):

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        return []

    def existing_parameters(self, model: nn.Module) -> list[str]:
        return [name for name, _ in model.named_parameters() if "bias" in name]

    def merge(self, model: nn.Module) -> None:
        return None
