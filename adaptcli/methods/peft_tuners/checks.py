"""peft options checked before peft sees them: each value of the kind its config field declares, and ranks
that fit the model, so bad input is one line instead of a deep error or a huge allocation.

peft validates little itself: nested garbage in ``peft_config`` fails deep inside injection with whatever
error type the code there raises, and ``r=1000000`` allocates adapters of ``r x (in + out)`` per target
layer (hundreds of GB on a ViT-B) before anything looks at it.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from torch import nn

from adaptcli.errors import ConfigError


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (parsed YAML) is of the kind ``hint`` declares; unknown kinds are left to peft.
    Numbers are one kind (peft annotates ``lora_alpha`` as int and takes floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args or any(_fills_placeholder(value, arg) for arg in args)
    if hint in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if hint in (list, tuple, set) or origin in (list, tuple, set):
        if not isinstance(value, (list, tuple)):
            return False
        return not args or all(fits(item, args[0]) for item in value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(fits(k, args[0]) and fits(v, args[1]) for k, v in value.items())
    return True


def _fills_placeholder(value: Any, literal: Any) -> bool:
    """``pissa_niter_16`` for peft's literal ``'pissa_niter_[number of iters]'``: a bracketed part names a value."""
    if not isinstance(value, str) or not isinstance(literal, str) or "[" not in literal:
        return False
    pattern = "".join(r"\S+" if part.startswith("[") else re.escape(part)
                      for part in re.split(r"(\[[^\]]*\])", literal))
    return re.fullmatch(pattern, value) is not None


def check_kinds(cls: type, options: dict[str, Any]) -> None:
    """A one-line :class:`ConfigError` for the first option whose value is not of its field's kind."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation this Python cannot resolve: leave the check to peft
        return
    for key, value in options.items():
        if key in hints and not fits(value, hints[key]):
            raise ConfigError(f"method.peft_config.{key}: {str(value)[:60]} is not what {cls.__name__} takes "
                              f"({_hint_text(hints[key])})")


def _hint_text(hint: Any) -> str:
    """``int``, ``list[str] | str | None``: the declared kind as a user reads it."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(_hint_text(arg) for arg in typing.get_args(hint))
    if isinstance(hint, type) and not typing.get_args(hint):
        return "None" if hint is type(None) else hint.__name__
    return str(hint).replace("typing.", "")


def rank_options(config: Any) -> dict[str, float]:
    """The config's rank-like options (``r``, ``*_r``) that are numbers."""
    return {key: value for key, value in vars(config).items()
            if (key == "r" or key.endswith("_r")) and isinstance(value, (int, float)) and not isinstance(value, bool)}


def check_ranks(config: Any, model: nn.Module, where: str = "method.") -> None:
    """Ranks are at least 1, and the adapters they imply (``r x (in + out)`` per target layer, LoRA's
    count) add no more parameters than the whole model has: checked before anything is allocated. A rank of
    0 where the tuner's own default is 0 means "unset" there (OFT's ``r``: ``oft_block_size`` sizes it
    instead) and is left to peft. ``where``: the option's prefix in messages (``method.peft_config.``)."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else {}
    ranks = rank_options(config)
    for key, value in ranks.items():
        if value < 1 and not (value == 0 and defaults.get(key) == 0):
            raise ConfigError(f"{where}{key}={value}: a rank must be at least 1")
    if not ranks:
        return
    from peft.tuners.tuners_utils import check_target_module_exists

    sizes = []
    for name, module in model.named_modules():
        inputs, outputs = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if not isinstance(inputs, int) or not isinstance(outputs, int):
            continue
        try:
            targeted = check_target_module_exists(config, name)
        except Exception:  # noqa: BLE001 - a config without target modules: peft says so at injection
            return
        if targeted:
            sizes.append(inputs + outputs)
    model_params = sum(p.numel() for p in model.parameters())
    key, rank = max(ranks.items(), key=lambda item: item[1])
    implied = int(rank * sum(sizes))
    if implied > model_params:
        raise ConfigError(f"{where}{key}={rank:g} would add about {implied:,} parameters over {len(sizes)} target "
                          f"layers, more than the whole model's {model_params:,}; choose a smaller rank")


__all__ = ["check_kinds", "check_ranks", "fits", "rank_options"]
