"""``--model`` and ``--checkpoint`` as the ``--set`` overrides they stand for."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from adaptcli.errors import AdaptError


def model_overrides(model: Optional[str], checkpoint: Optional[Path], sets: Optional[list[str]]) -> list[str]:
    """``model.checkpoint`` and ``model.name`` first, so an explicit ``--set`` still wins."""
    overrides = list(sets or [])
    if model is not None:
        overrides.insert(0, f"model.name={model}")
    if checkpoint is not None:
        if not checkpoint.exists():
            raise AdaptError(f"--checkpoint {checkpoint} does not exist")
        overrides.insert(0, f"model.checkpoint={checkpoint.resolve()}")
    return overrides
