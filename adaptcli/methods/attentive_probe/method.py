"""The attentive probe: V-JEPA's pooler in place of the backbone's pooling, the classifier re-initialised."""

from __future__ import annotations

from typing import Any

from torch import nn

from adaptcli.errors import UnsupportedModelError
from adaptcli.methods.attentive_probe.pooler import AttentivePooler
from adaptcli.methods.base import Method
from adaptcli.models.blocks import classifier


class AttentiveProbe(Method):
    """Sets the model's ``attn_pool``, which timm's ViT and EVA and adaptcli's video ViT call on the final
    tokens in place of their pooling (timm's ViT is told to pass its prefix tokens too, as EVA always
    does: the pooler drops them itself); everything before it stays frozen."""

    def check_model(self, model: nn.Module) -> None:
        if not hasattr(model, "attn_pool") or not isinstance(getattr(model, "embed_dim", None), int):
            raise UnsupportedModelError(
                f"attentive_probe needs a ViT that outputs tokens (timm VisionTransformer or a video ViT), "
                f"not {type(model).__name__}; use --method linear")
        if model.attn_pool is not None:
            raise UnsupportedModelError(
                f"{type(model).__name__} already pools with a pretrained attention head (SigLIP's MAP), which "
                "the attentive probe would replace; use --method linear on it, or a backbone without one")
        if not isinstance(classifier(model), nn.Linear):
            raise UnsupportedModelError("attentive_probe needs a Linear classifier (set --num-classes)")

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        dim = model.embed_dim
        if dim % options.heads:
            raise UnsupportedModelError(
                f"method.heads={options.heads} does not divide the backbone's width {dim}; "
                f"set method.heads to a divisor of {dim}")
        model.attn_pool = AttentivePooler(dim, options.heads, options.depth, options.mlp_ratio,
                                          prefix_tokens=getattr(model, "num_prefix_tokens", 0))
        if hasattr(model, "pool_include_prefix"):
            model.pool_include_prefix = True
        classifier(model).reset_parameters()  # the official AttentiveClassifier's nn.Linear default init
        return ["attn_pool"]
