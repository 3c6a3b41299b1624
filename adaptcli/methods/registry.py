"""The method registry: names, option classes and behaviour flags of every method. Torch-free.

A method is one folder ``adaptcli/methods/<folder>/`` with ``config.py`` (its options and a
:func:`register` call, imported here to list the methods) and ``method.py`` (its code, imported only
when a model is adapted). The engine, deploy, runs and CLI layers decide behaviour from the flags
below, never from a method's name.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adaptcli.errors import ConfigError


@dataclass
class NoOptions:
    """Methods without options (linear, full)."""


@dataclass(frozen=True)
class MethodSpec:
    """What the rest of adaptcli may know about a method without importing its code."""

    name: str
    summary: str  # one line for --help and the docs
    options: type  # dataclass of the method's options (``method.*`` keys)
    implementation: str  # "module:Class" of its :class:`~adaptcli.methods.base.Method`
    order: int = 100  # position in listings (the papers' order)
    trains_backbone: bool = False  # every backbone weight trains (checkpoints hold the whole model)
    mergeable: bool = False  # folds exactly into the backbone's own architecture
    head: Literal["linear", "probe"] = "linear"  # probe: BatchNorm without affine, then Linear (MAE)
    feature_cache: bool = False  # the backbone's output never changes in training: cache it
    adds_tokens: bool = False  # lengthens the token sequence (needs one flat sequence)
    unused_parameters: bool = False  # some trainable parameter can miss a gradient in a step (DDP must search)


_REGISTRY: dict[str, MethodSpec] = {}
_DISCOVERED = False


def register(spec: MethodSpec) -> MethodSpec:
    """Called by each method folder's ``config.py``."""
    _REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    # The folder itself, not the package object: importing adaptcli.methods here would make a cycle.
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.ispkg:
            importlib.import_module(f"adaptcli.methods.{module.name}.config")
    _DISCOVERED = True


def all_methods() -> list[MethodSpec]:
    """Every registered method, in the papers' order."""
    _discover()
    return sorted(_REGISTRY.values(), key=lambda spec: (spec.order, spec.name))


def method_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in all_methods())


def method_spec(name: str) -> MethodSpec:
    """The spec of ``name``; an unknown name is a one-line error with the closest valid one."""
    _discover()
    spec = _REGISTRY.get(name)
    if spec is None:
        names = method_names()
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown method '{name}'{hint}: choose one of {', '.join(names)}")
    return spec


def method_help() -> str:
    """``name (summary)`` for every method, for ``--method`` help texts."""
    return "; ".join(f"{spec.name}: {spec.summary}" for spec in all_methods())


def cannot_merge_message(name: str) -> str:
    """The one refusal for merging a method that is not linear in the backbone's weights."""
    return (f"{name} cannot be merged into the backbone (it adds a non-linear branch or extra tokens); "
            "export with --full or --adapter-only instead")
