"""BitFit: nothing is added; the backbone's own bias tensors become the method's parameters.

The rule is the BitFit baselines' in the VPT, NOAH and V-PETL code: every tensor whose name contains
``bias`` (the head is the task's own, counted apart). On timm ViTs that is every ``.bias``; on Swin it
also takes ``relative_position_bias_table`` (200,760 on Swin-B, as those baselines count). On the video
ViT the key third of each fused ``qkv.bias`` is neither trained nor counted: VideoMAE's layout has no
key bias (timm image ViTs keep theirs, as the official counts do). The merged model is the backbone
with its trained biases, so merging changes nothing.
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

    def fixed_parts(self, model: nn.Module) -> dict[str, slice]:
        parts = getattr(model, "key_bias_parts", None)
        return parts() if callable(parts) else {}

    def merge(self, model: nn.Module) -> None:
        return None
