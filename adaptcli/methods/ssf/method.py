"""SSF: ``y = x * gamma + beta`` (one gamma and beta per channel) after the layers that make features.

Positions (as in the paper's ViT code): the patch embedding, and in every block norm1, the fused
qkv (3D channels), the attention projection, norm2, fc1 and fc2; then the final norm. Each
position wraps its layer (kept as ``base_layer``, so plain key names map back), and merging
folds gamma and beta into that layer's weight and bias: the plain architecture, exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adaptcli.errors import NotMergeableError, UnsupportedModelError
from adaptcli.methods.base import Method, is_plain_layer_norm
from adaptcli.methods.ssf.config import SsfOptions
from adaptcli.models.blocks import set_submodule, transformer_blocks

BLOCK_TARGETS = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")


class ScaleShift(nn.Module):
    """gamma and beta over the channel dimension (last for tokens, 1 for a convolution's output)."""

    def __init__(self, channels: int, init_std: float, channel_dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.empty(channels).normal_(1.0, init_std))
        self.shift = nn.Parameter(torch.empty(channels).normal_(0.0, init_std))
        self.channel_dim = channel_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim == -1:
            return torch.addcmul(self.shift, x, self.scale)  # one pass over x instead of two
        view = (-1,) + (1,) * (x.dim() - 2)
        return x * self.scale.view(view) + self.shift.view(view)


class SsfWrapped(nn.Module):
    """A layer followed by its scale-shift."""

    def __init__(self, base_layer: nn.Module, init_std: float):
        super().__init__()
        self.base_layer = base_layer
        channel_dim = 1 if isinstance(base_layer, nn.modules.conv._ConvNd) else -1
        self.ssf = ScaleShift(_out_channels(base_layer), init_std, channel_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer, ssf = self.base_layer, self.ssf
        if is_plain_layer_norm(layer):
            # After a LayerNorm, gamma and beta fold into its affine terms: no element-wise pass and
            # no extra saved tensor (the norm's backward yields their gradients).
            return F.layer_norm(x, layer.normalized_shape, layer.weight * ssf.scale,
                                torch.addcmul(ssf.shift, layer.bias, ssf.scale), layer.eps)
        return ssf(layer(x))

    @torch.no_grad()
    def folded(self) -> nn.Module:
        """The base layer with gamma and beta folded into its weight and bias."""
        layer, scale, shift = self.base_layer, self.ssf.scale, self.ssf.shift
        if getattr(layer, "weight", None) is None or getattr(layer, "bias", None) is None:
            raise NotMergeableError(
                f"cannot merge SSF: {type(layer).__name__} has no weight or no bias to fold the scale and "
                "shift into; export with --full or --adapter-only instead"
            )
        weight = layer.weight
        weight.mul_(scale.to(weight).view((-1,) + (1,) * (weight.dim() - 1)))
        layer.bias.mul_(scale.to(weight)).add_(shift.to(weight))
        return layer


def _out_channels(layer: nn.Module) -> int:
    for attr in ("out_features", "out_channels"):
        if isinstance(getattr(layer, attr, None), int):
            return getattr(layer, attr)
    shape = getattr(layer, "normalized_shape", None)
    if shape:
        return int(shape[-1])
    raise UnsupportedModelError(f"SSF cannot follow a {type(layer).__name__} (no output channel count)")


def _has_weights(module: nn.Module | None) -> bool:
    return isinstance(module, nn.Module) and any(True for _ in module.parameters(recurse=False))


def ssf_targets(model: nn.Module) -> list[str]:
    """Qualified names of every layer SSF follows, in forward order."""
    targets = []
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None:
        # The last layer with weights in the embedding: its norm (Swin) or its convolution (ViT).
        if _has_weights(getattr(patch_embed, "norm", None)):
            targets.append("patch_embed.norm")
        elif _has_weights(getattr(patch_embed, "proj", None)):
            targets.append("patch_embed.proj")
    for name, block in transformer_blocks(model):
        for target in BLOCK_TARGETS:
            try:
                layer = block.get_submodule(target)
            except AttributeError:
                layer = None
            if not _has_weights(layer):
                raise UnsupportedModelError(
                    f"SSF needs {target} with weights in every block; {type(model).__name__}'s {name} has none "
                    "(separate q/k/v or another layout): use lora or adaptformer"
                )
            targets.append(f"{name}.{target}")
    if _has_weights(getattr(model, "norm", None)):
        targets.append("norm")  # without weights (mean pooling + fc_norm) the trained fc_norm takes its place
    return targets


class Ssf(Method):

    def check_model(self, model: nn.Module) -> None:
        ssf_targets(model)

    def inject(self, model: nn.Module, options: SsfOptions) -> list[str]:
        added = []
        for target in ssf_targets(model):
            set_submodule(model, target, SsfWrapped(model.get_submodule(target), options.init_std))
            added.append(f"{target}.ssf")
        return added

    def merge(self, model: nn.Module) -> None:
        for name, module in list(model.named_modules()):
            if isinstance(module, SsfWrapped):
                set_submodule(model, name, module.folded())
