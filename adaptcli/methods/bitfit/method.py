"""BitFit: nothing is added; the backbone's own bias vectors become the method's parameters.

The merged model is the backbone with its trained biases, so merging changes nothing.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from adaptcli.methods.base import Method


class BitFit(Method):

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        return []

    def existing_parameters(self, model: nn.Module) -> list[str]:
        return [name for name, _ in model.named_parameters() if name.endswith(".bias") or name == "bias"]

    def merge(self, model: nn.Module) -> None:
        return None
