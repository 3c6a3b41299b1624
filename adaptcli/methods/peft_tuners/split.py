"""``method.qkv: split``: LoRA (or DoRA) on the q, k and/or v rows of timm's fused ``qkv`` Linear.

Adapter+'s LoRA baseline adapts q and k separately, each with its own rank-r pair. peft cannot do
this: its LoRA (``target_modules`` or ``target_parameters``) adds one update to a whole layer or
parameter, and no option restricts it to row blocks of one Linear. Its nearest feature, BD-LoRA's
block-diagonal B (``nblocks=3``), always adapts all three of q, k and v, cannot be combined with
DoRA, and is missing from peft 0.19 (the lowest supported). So this small module does it: it keeps
the ``qkv`` Linear as ``base_layer`` (``adaptcli.methods.apply.plain_key`` maps its keys back) and adds
``lora_A.<part>`` (kaiming-uniform, as peft) and ``lora_B.<part>`` (zeros) per chosen part, scaled by
``alpha / r``, with dropout on the input as peft's LoRA (one mask for all parts, or one per part). The
``houlsby`` init draws A and B from a normal of std 0.01 cut at 2 std, as Adapter+'s LoRA baseline runs. With DoRA, ``lora_magnitude.<part>`` holds
the norm of each of that part's output rows (peft's DoRA, per part). Merging folds everything into
``qkv.weight`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from adaptcli.errors import ConfigError, UnsupportedModelError
from adaptcli.models.blocks import call_qkv_modules, set_submodule, transformer_blocks

PARTS = ("q", "k", "v")
HOULSBY_STD = 0.01  # Adapter+'s Houlsby init (the paper's value)


class SplitQkvLora(nn.Module):
    """A fused qkv Linear plus an independent low-rank update of each chosen part's output rows."""

    def __init__(self, base_layer: nn.Linear, parts: Sequence[str], r: int, alpha: float, dropout: float,
                 dora: bool = False, init: str = "lora", per_part_dropout: bool = False):
        super().__init__()
        self.base_layer = base_layer
        self.width = base_layer.out_features // 3
        self.scaling = alpha / r
        self.lora_dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.per_part_dropout = per_part_dropout
        weight = base_layer.weight
        kwargs = {"device": weight.device, "dtype": weight.dtype}
        self.lora_A = nn.ModuleDict({p: nn.Linear(base_layer.in_features, r, bias=False, **kwargs) for p in parts})
        self.lora_B = nn.ModuleDict({p: nn.Linear(r, self.width, bias=False, **kwargs) for p in parts})
        for part in parts:
            if init == "houlsby":
                for layer in (self.lora_A[part], self.lora_B[part]):
                    nn.init.trunc_normal_(layer.weight, std=HOULSBY_STD, a=-2 * HOULSBY_STD, b=2 * HOULSBY_STD)
            else:
                nn.init.kaiming_uniform_(self.lora_A[part].weight, a=math.sqrt(5))
                nn.init.zeros_(self.lora_B[part].weight)
        self.lora_magnitude = nn.ParameterDict(
            {p: nn.Parameter((self._rows(weight, p) + self.delta(p)).detach().norm(dim=1).clone()) for p in parts}
            if dora else {})  # peft's DoRA: the norm of W + delta (W alone when B starts at zero)

    def _rows(self, tensor: torch.Tensor, part: str) -> torch.Tensor:
        start = PARTS.index(part) * self.width
        return tensor[start:start + self.width]

    def delta(self, part: str) -> torch.Tensor:
        """``(alpha / r) B A`` of one part: the change of its rows of ``qkv.weight`` (before DoRA's scale)."""
        return self.lora_B[part].weight @ self.lora_A[part].weight * self.scaling

    def _dora_scale(self, part: str) -> torch.Tensor:
        """DoRA's magnitude over each row's norm (norm detached, as peft and the DoRA paper do)."""
        rows = self._rows(self.base_layer.weight, part) + self.delta(part)
        return self.lora_magnitude[part] / rows.norm(dim=1).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = list(self.base_layer(x).split(self.width, dim=-1))
        shared = None if self.per_part_dropout else self.lora_dropout(x)
        bias = self.base_layer.bias
        for index, part in enumerate(PARTS):
            if part not in self.lora_A:
                continue
            h = self.lora_dropout(x) if shared is None else shared  # per part: a fresh mask each
            update = self.lora_B[part](self.lora_A[part](h)) * self.scaling
            if part in self.lora_magnitude:  # peft's DoRA: scale * (x W^T + update) + bias
                scale = self._dora_scale(part)
                plain = chunks[index] if bias is None else chunks[index] - self._rows(bias, part)
                chunks[index] = chunks[index] + (scale - 1) * plain + scale * update
            else:
                chunks[index] = chunks[index] + update
        return torch.cat(chunks, dim=-1)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base layer with every part's update folded into its weight."""
        weight = self.base_layer.weight
        for part in self.lora_A:
            rows = self._rows(weight, part)
            if part in self.lora_magnitude:
                scale = self._dora_scale(part)
                rows.add_(self.delta(part).to(weight)).mul_(scale.to(weight).unsqueeze(1))
            else:
                rows.add_(self.delta(part).to(weight))
        return self.base_layer


def qkv_layers(model: nn.Module) -> list[str]:
    """The qualified name of every block's fused ``attn.qkv`` Linear, or a one-line refusal."""
    names = []
    for name, block in transformer_blocks(model):
        qkv = getattr(block.attn, "qkv", None)
        if not isinstance(qkv, nn.Linear) or qkv.out_features % 3:
            raise UnsupportedModelError(
                f"method.qkv=split needs a fused attn.qkv Linear in every block; {type(model).__name__}'s {name} "
                "has none (separate q/k/v): use method.qkv=fused with method.target_modules naming them")
        names.append(f"{name}.attn.qkv")
    return names


def inject_split(model: nn.Module, parts: Sequence[str], r: int, alpha: float, dropout: float,
                 dora: bool, init: str = "lora", per_part_dropout: bool = False) -> list[str]:
    """Wrap every block's qkv in :class:`SplitQkvLora`; returns the names of the added modules."""
    targets = qkv_layers(model)
    width = sum(model.get_submodule(t).in_features + model.get_submodule(t).out_features // 3 for t in targets)
    implied, total = r * len(parts) * width, sum(p.numel() for p in model.parameters())
    if implied > total:
        raise ConfigError(f"method.r={r} would add {implied:,} parameters over {len(targets)} qkv layers, more "
                          f"than the whole model's {total:,}; choose a smaller rank")
    added = []
    for target in targets:
        set_submodule(model, target, SplitQkvLora(model.get_submodule(target), parts, r, alpha, dropout, dora,
                                                          init, per_part_dropout))
        added += [f"{target}.{child}" for child in ("lora_A", "lora_B", "lora_magnitude")[:3 if dora else 2]]
    call_qkv_modules(model)
    return added


def merge_split(model: nn.Module) -> None:
    """Put each wrapped qkv back as a plain Linear with the updates folded in."""
    for name, module in list(model.named_modules()):
        if isinstance(module, SplitQkvLora):
            set_submodule(model, name, module.merged())


__all__ = ["PARTS", "SplitQkvLora", "inject_split", "merge_split", "qkv_layers"]
