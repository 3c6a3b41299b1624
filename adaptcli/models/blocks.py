"""Find the parts of a transformer that methods attach to, generically over timm architectures.

A *block* is any module with ``norm1``, ``attn``, ``norm2`` and ``mlp`` children (timm ViT, Swin,
adaptcli's video ViT, torchvision's ``SwinTransformerBlock`` in Video Swin). Blocks are grouped by their parent container: one group for a plain ViT, one
per stage for Swin (ARC shares its projection within a group).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

BLOCK_PARTS = ("norm1", "attn", "norm2", "mlp")


def is_block(module: nn.Module) -> bool:
    return all(isinstance(getattr(module, part, None), nn.Module) for part in BLOCK_PARTS)


def transformer_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """All blocks in forward order, with their qualified names."""
    found = [(name, module) for name, module in model.named_modules() if is_block(module)]
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no transformer blocks (modules with norm1/attn/norm2/mlp)"
        )
    return found


def block_groups(model: nn.Module) -> list[list[int]]:
    """Indices of blocks grouped by parent container (one group per Swin stage)."""
    groups: dict[str, list[int]] = {}
    for index, (name, _) in enumerate(transformer_blocks(model)):
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        groups.setdefault(parent, []).append(index)
    return list(groups.values())


def block_width(block: nn.Module) -> int:
    """The residual-stream width D of a block, read from its first norm."""
    norm = getattr(block.norm1, "base_layer", block.norm1)  # ARC wraps the norm
    shape = getattr(norm, "normalized_shape", None) or tuple(norm.weight.shape)
    return int(shape[-1])


def select_layers(num_blocks: int, layers: list[int] | None) -> list[int]:
    """Validate a ``layers`` option (0-based block indices; None means all)."""
    from adaptcli.errors import ConfigError

    if layers is None:
        return list(range(num_blocks))
    bad = [i for i in layers if not 0 <= i < num_blocks]
    if bad:
        raise ConfigError(
            f"method.layers: block index {bad[0]} out of range; this model has blocks 0..{num_blocks - 1}"
        )
    return sorted(set(layers))


def qualified_name(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise ValueError("module is not part of the model")


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule at dotted ``name``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def classifier(model: nn.Module) -> nn.Module:
    """The final classifier (timm's ``get_classifier``)."""
    get = getattr(model, "get_classifier", None)
    if get is None:
        raise ValueError(f"{type(model).__name__} has no get_classifier(); not a timm classifier")
    head = get()
    if isinstance(head, tuple):  # timm's distilled DeiT: a class head and a distillation head, averaged
        from adaptcli.errors import ConfigError

        raise ConfigError(f"{type(model).__name__} has {len(head)} classifier heads (a distilled DeiT's class and "
                          "distillation heads); adaptcli adapts models with one head: use the model without "
                          "'_distilled' (e.g. deit_base_patch16_224) or a DeiT-III (deit3_base_patch16_224)")
    return head


def head_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Modules that always train: the classifier and, when it has weights, ``fc_norm``."""
    head = classifier(model)
    yield qualified_name(model, head), head
    fc_norm = getattr(model, "fc_norm", None)
    if isinstance(fc_norm, nn.Module) and any(True for _ in fc_norm.parameters()):
        yield "fc_norm", fc_norm


def attention_inputs(block: nn.Module) -> list[nn.Linear]:
    """The Linear layers that read ``norm1``'s output (fused qkv or separate q/k/v)."""
    attn = block.attn
    for names in (("qkv",), ("q", "k", "v"), ("q_proj", "k_proj", "v_proj")):
        layers = [getattr(attn, n, None) for n in names]
        if all(isinstance(layer, nn.Linear) for layer in layers):
            return layers  # type: ignore[return-value]
    return []


def call_qkv_modules(model: nn.Module) -> None:
    """Make attention call its fused ``qkv`` module where it would bypass it.

    timm's EVA attention with a fused ``qkv`` and separate q/v biases (EVA-02 tiny/small, EVA) computes
    ``F.linear(x, qkv.weight, bias)``, so a method that wraps ``qkv`` would never run. Its own switch
    ``qkv_bias_separate`` computes ``qkv(x) + bias`` instead: the same sum, through the module.
    """
    for module in model.modules():
        if getattr(module, "qkv_bias_separate", None) is False and getattr(module, "q_bias", None) is not None \
                and isinstance(getattr(module, "qkv", None), nn.Module):
            module.qkv_bias_separate = True


def qkv_bias_outside(block: nn.Module) -> bool:
    """Whether the block's attention adds its q/v biases outside its fused ``qkv`` Linear (EVA)."""
    return getattr(block.attn, "q_bias", None) is not None and isinstance(getattr(block.attn, "qkv", None), nn.Module)


def mlp_inputs(block: nn.Module) -> list[nn.Linear]:
    """The Linear layers that read ``norm2``'s output (fc1, the gated pair fc1_g / fc1_x, or the first
    layer of a Sequential MLP such as torchvision's ``MLP``, whose keys are ``mlp.0`` / ``mlp.3``)."""
    mlp = block.mlp
    if isinstance(mlp, nn.Sequential) and len(mlp) and isinstance(mlp[0], nn.Linear):
        return [mlp[0]]
    for names in (("fc1",), ("fc1_g", "fc1_x")):
        layers = [getattr(mlp, n, None) for n in names]
        if all(isinstance(layer, nn.Linear) for layer in layers):
            return layers  # type: ignore[return-value]
    return []
