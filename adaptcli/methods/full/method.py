"""Full fine-tuning: nothing is injected; every weight trains (the registry flag says so)."""

from __future__ import annotations

from typing import Any

from torch import nn

from adaptcli.methods.base import Method


class Full(Method):

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        return []

    def merge(self, model: nn.Module) -> None:
        return None
