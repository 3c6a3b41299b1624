"""Methods: a torch-free registry (:mod:`.registry`), the shared base (:mod:`.base`), one folder
per method (``<folder>/config.py`` options + registration, ``<folder>/method.py`` code), and
:mod:`.apply` (inject, save, merge).

The functions of :mod:`.apply` are re-exported lazily, so importing this package (or the
registry) never imports torch.
"""

from __future__ import annotations

from typing import Any

_APPLY_NAMES = (
    "AdaptInfo", "apply_method", "adapter_state_dict", "frozen_backbone_state",
    "get_method", "merge_method", "plain_key", "trainable_state_dict",
)


def __getattr__(name: str) -> Any:
    if name in _APPLY_NAMES:
        from adaptcli.methods import apply

        return getattr(apply, name)
    raise AttributeError(f"module 'adaptcli.methods' has no attribute '{name}'")


__all__ = list(_APPLY_NAMES)
