"""SSF: ``y = x * gamma + beta`` (one gamma and beta per channel) after the layers that make features.

Sites, as in the paper's code (dongzelian/SSF models/vision_transformer.py and swin_transformer.py):
the patch embedding's convolution and, when it has one, its norm; in every block norm1, the fused
qkv (3D channels), the attention projection, norm2, fc1 and fc2; with ``method.patch_merging``, Swin's
patch-merging norms (4D channels, before the reduction: the code as written; as it runs it has none);
then the final norm. EVA-02's separate q/k/v and SwiGLU fc1_g/fc1_x each get the scale-shift of
their channels, and its SwiGLU norm gets one too. Each site wraps its layer (kept as
``base_layer``, so plain key names map back), and merging folds gamma and beta into that layer's
weight and bias: the plain architecture, exactly.

On a mean-pooling backbone (``norm`` is an identity, ``fc_norm`` after the pooling: MAE, VideoMAE)
the paper's final site sits on the tokens before the pooling, which by linearity is a scale-shift of
the pooled features before the frozen ``fc_norm`` (``method.pooled_site: official``). No layer can
absorb it, so such a run does not merge; ``pooled_site: fc_norm`` trains ``fc_norm`` instead (as every
other method does) and merges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adaptcli.errors import NotMergeableError, UnsupportedModelError
from adaptcli.methods.base import Method, is_plain_layer_norm
from adaptcli.methods.ssf.config import SsfOptions
from adaptcli.models.blocks import qkv_bias_outside, set_submodule, transformer_blocks

#: Each block's sites; a tuple lists the names one site has in different layouts (timm's fc1/fc2,
#: torchvision's Sequential MLP as in Video Swin: mlp.0 / mlp.3); ``a+b`` is one site split over layers
#: (EVA-02's separate q/k/v and its SwiGLU's fc1_g / fc1_x: each gets the scale-shift of its channels).
BLOCK_TARGETS = ("norm1", ("attn.qkv", "attn.q_proj+attn.k_proj+attn.v_proj"), "attn.proj", "norm2",
                 ("mlp.fc1", "mlp.0", "mlp.fc1_g+mlp.fc1_x"), ("mlp.fc2", "mlp.3"))
#: Sites taken where the layer has weights: the norm inside EVA-02's SwiGLU (after every LayerNorm, as the paper).
OPTIONAL_BLOCK_TARGETS = ("mlp.norm",)


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


def _can_fold(layer: nn.Module) -> bool:
    return getattr(layer, "weight", None) is not None and getattr(layer, "bias", None) is not None


def _has_weights(module: nn.Module | None) -> bool:
    return isinstance(module, nn.Module) and any(True for _ in module.parameters(recurse=False))


def _block_site(block: nn.Module, names: str | tuple[str, ...]) -> list[str] | None:
    """The layer names of the first layout of a site that the block has, all with weights."""
    for alternative in (names,) if isinstance(names, str) else names:
        layers = alternative.split("+")
        try:
            if all(_has_weights(block.get_submodule(name)) for name in layers):
                return layers
        except AttributeError:
            continue
    return None


def ssf_targets(model: nn.Module, patch_merging: bool = False) -> list[str]:
    """Qualified names of every layer SSF follows, in forward order (the pooled site apart); Swin's
    patch-merging norms only with ``patch_merging``."""
    targets = []
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None:
        targets += [f"patch_embed.{n}" for n in ("proj", "norm") if _has_weights(getattr(patch_embed, n, None))]
    blocks = transformer_blocks(model)
    block_names = {name for name, _ in blocks}
    for name, module in model.named_modules():
        if name in block_names:
            for names in BLOCK_TARGETS:
                site = _block_site(module, names)
                if site is None:
                    raise UnsupportedModelError(
                        f"SSF needs {names if isinstance(names, str) else ' or '.join(names)} with weights in every "
                        f"block; {type(model).__name__}'s {name} has none (another layout): use "
                        "lora or adaptformer")
                targets += [f"{name}.{layer}" for layer in site]
            targets += [f"{name}.{layer}" for layer in OPTIONAL_BLOCK_TARGETS if _block_site(module, layer)]
        elif patch_merging and "PatchMerging" in type(module).__name__ and _has_weights(getattr(module, "norm", None)):
            targets.append(f"{name}.norm")  # Swin's merging: norm over 4D channels, then the reduction
    if _has_weights(getattr(model, "norm", None)):
        targets.append("norm")
    return targets


def pooled_site(model: nn.Module) -> str | None:
    """``fc_norm`` when the backbone pools before its last norm (its ``norm`` has no weights)."""
    if not _has_weights(getattr(model, "norm", None)) and _has_weights(getattr(model, "fc_norm", None)):
        return "fc_norm"
    return None


class SsfBefore(nn.Module):
    """A scale-shift of a layer's input (the pooled features before ``fc_norm``): not mergeable."""

    def __init__(self, base_layer: nn.Module, init_std: float):
        super().__init__()
        self.base_layer = base_layer
        self.ssf = ScaleShift(_out_channels(base_layer), init_std, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(self.ssf(x))


class Ssf(Method):

    def check_model(self, model: nn.Module) -> None:
        for name, block in transformer_blocks(model):
            if qkv_bias_outside(block):
                raise UnsupportedModelError(
                    f"SSF follows the whole qkv layer, but {type(model).__name__}'s {name} adds its q/v biases "
                    "outside its qkv Linear (EVA): use lora or adaptformer")
        ssf_targets(model)

    def inject(self, model: nn.Module, options: SsfOptions) -> list[str]:
        added = []
        for target in ssf_targets(model, options.patch_merging):
            set_submodule(model, target, SsfWrapped(model.get_submodule(target), options.init_std))
            added.append(f"{target}.ssf")
        site = pooled_site(model)
        if site and options.pooled_site == "official":
            set_submodule(model, site, SsfBefore(model.get_submodule(site), options.init_std))
            added.append(f"{site}.ssf")
        return added

    def is_mergeable(self, model: nn.Module) -> bool:
        """Not with the pooled site, nor where a layer has no bias to absorb the shift (CLIP's patch
        embedding convolution)."""
        return not any(isinstance(m, SsfBefore) or (isinstance(m, SsfWrapped) and not _can_fold(m.base_layer))
                       for m in model.modules())

    def kept_frozen(self, model: nn.Module) -> list[str]:
        """The paper keeps the pretrained ``fc_norm`` behind its pooled site."""
        return [n for n, _ in model.named_parameters() if n.startswith("fc_norm.base_layer.")]

    def merge(self, model: nn.Module) -> None:
        if any(isinstance(m, SsfBefore) for m in model.modules()):
            raise NotMergeableError(
                "cannot merge SSF's pooled site (method.pooled_site=official on a mean-pooling backbone): no "
                "layer can absorb a scale-shift before fc_norm; export with --full or --adapter-only, or train "
                "with --set method.pooled_site=fc_norm to merge")
        for name, module in list(model.named_modules()):
            if isinstance(module, SsfWrapped):
                set_submodule(model, name, module.folded())
