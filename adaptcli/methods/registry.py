"""The method registry: names, option classes and behaviour flags of every method. Torch-free.

A method is one folder ``adaptcli/methods/<folder>/`` with ``config.py`` (its options and a
:func:`register` call, imported here to list the methods) and ``method.py`` (its code, imported only
when a model is adapted). The engine, deploy, runs and CLI layers decide behaviour from the flags
below, never from a method's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from adaptcli.errors import ConfigError
from adaptcli.registry import Registry


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
    #: options that make a mergeable method unmergeable: returns the one-line refusal, or None
    merge_refusal: Optional[Callable[[Any], Optional[str]]] = None
    feature_cache: bool = False  # the backbone's output never changes in training: cache it
    unused_parameters: bool = False  # some trainable parameter can miss a gradient in a step (DDP must search)
    pace: bool = False  # has an adapter output that PACE's noise can perturb (Method.pace_sites)
    #: its options ``lrs`` / ``weight_decays`` train a grid of probes on one backbone pass (:func:`probe_settings`)
    probe_grid: bool = False


#: Every method folder's ``config.py`` registers its spec here (imported on first read).
METHODS: Registry[MethodSpec] = Registry("method", lambda spec: spec.summary, package="adaptcli.methods",
                                         inside="config", order=lambda spec: spec.order, error=ConfigError)


def register(spec: MethodSpec) -> MethodSpec:
    """Called by each method folder's ``config.py``."""
    return METHODS.register(spec)


def all_methods() -> list[MethodSpec]:
    """Every registered method, in the papers' order."""
    return METHODS.entries()


def method_names() -> tuple[str, ...]:
    return METHODS.names()


def method_spec(name: str) -> MethodSpec:
    """The spec of ``name``; an unknown name is a one-line error with the closest valid one."""
    return METHODS.get(name)


def method_help() -> str:
    """``name: summary`` for every method, for ``--method`` help texts."""
    return METHODS.help()


def merge_refusal(name: str, options: Any) -> Optional[str]:
    """Why a run of method ``name`` with ``options`` cannot be merged (one line), or None when it can."""
    spec = method_spec(name)
    if not spec.mergeable:
        return cannot_merge_message(name)
    return spec.merge_refusal(options) if spec.merge_refusal is not None else None


def probe_settings(name: str, options: Any, lr: float, weight_decay: float) -> list[tuple[float, float]]:
    """The (lr, weight decay) of each probe a run of method ``name`` trains: every pair of its options'
    ``lrs`` x ``weight_decays`` (lr-major) for a method whose spec sets ``probe_grid``, where a list left
    null is the run's ``lr`` / ``weight_decay`` alone; one pair, (``lr``, ``weight_decay``), otherwise."""
    if not method_spec(name).probe_grid:
        return [(lr, weight_decay)]
    lrs = getattr(options, "lrs", None) or [lr]
    decays = getattr(options, "weight_decays", None) or [weight_decay]
    return [(float(a), float(b)) for a in lrs for b in decays]


def cannot_merge_message(name: str) -> str:
    """The one refusal for merging a method that is not linear in the backbone's weights."""
    return (f"{name} cannot be merged into the backbone (it adds a non-linear branch or extra tokens); "
            "export with --full or --adapter-only instead")
