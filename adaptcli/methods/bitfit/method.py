"""BitFit: nothing is added; the backbone's own bias tensors become the method's parameters.

The rule is the BitFit baselines' in the VPT, NOAH and V-PETL code: every tensor whose name contains
``bias`` (the head is the task's own, counted apart). On timm ViTs that is every ``.bias``; on Swin it
also takes ``relative_position_bias_table`` (200,760 on Swin-B, as those baselines count). On the video
ViT the key third of each fused ``qkv.bias`` is neither trained nor counted: VideoMAE's layout has no
key bias (timm image ViTs keep theirs, as the official counts do). On a mean-pooling backbone the rule
leaves ``fc_norm.weight`` frozen (only its bias is named *bias*); ``method.fc_norm=all`` trains it as the
other methods' heads do. The merged model is the backbone with its trained biases, so merging changes
nothing.
"""

from __future__ import annotations

from torch import nn

from adaptcli.methods.base import Method
from adaptcli.methods.bitfit.config import BitFitOptions


class BitFit(Method):
    fc_norm = "bias"  # the option, read by kept_frozen (which sees the model only)

    def inject(self, model: nn.Module, options: BitFitOptions) -> list[str]:
        self.fc_norm = options.fc_norm
        return []

    def existing_parameters(self, model: nn.Module) -> list[str]:
        return [name for name, _ in model.named_parameters() if "bias" in name]

    def kept_frozen(self, model: nn.Module) -> list[str]:
        if self.fc_norm == "all":
            return []
        fc_norm = getattr(model, "fc_norm", None)
        if not isinstance(fc_norm, nn.Module):
            return []
        return [f"fc_norm.{name}" for name, _ in fc_norm.named_parameters() if "bias" not in name]

    def fixed_parts(self, model: nn.Module) -> dict[str, slice]:
        parts = getattr(model, "key_bias_parts", None)
        return parts() if callable(parts) else {}

    def merge(self, model: nn.Module) -> None:
        return None
