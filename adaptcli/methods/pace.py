"""PACE's multiplicative noise on the adapter's output (Ni et al., NeurIPS 2024; MaxwellYaoNi/PACE).

In training, every *site* (a module whose output is the adapter's contribution ``dh``, see
:meth:`~adaptcli.methods.base.Method.pace_sites`) has its ``dh`` multiplied by ``z ~ N(1, sigma_l^2)``,
one draw per sample and channel, shared by the tokens (the official ``MultiplicativeNoiseAdapter``,
shape ``BC``). As the official ``train.py``, the classifier is a site whose whole output is ``dh``,
and ``sigma_l`` falls linearly with depth: block ``l`` of ``L`` (the head is ``L``) gets
``sigma * (L + 1 - l) / (L + 1 - s)``, ``s`` the first noisy block: 1 for a plain ViT (its first block
stays noiseless), 0 for a hierarchical (Swin) model. In evaluation nothing changes.

The noise comes from its own generator, reseeded each step from torch's global one
(:meth:`PaceNoise.reseed`): the second pass of a step can replay the global random state (drop-path
and dropout masks equal in both passes, as the official ``SharableDropPath`` makes them) and still
draw other noise, and a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from adaptcli.models.blocks import block_groups, classifier, qualified_name, transformer_blocks


@dataclass
class PaceSite:
    """A module whose output is (or holds) an adapter's output ``dh``.

    ``base``: None when the output is ``dh`` itself; otherwise a function of the module's positional
    inputs giving the frozen part ``h0`` of an output ``h0 + dh`` (ARC's re-composition).
    """

    name: str
    module: nn.Module
    base: Optional[Callable[[tuple[Any, ...]], torch.Tensor]] = None


def block_sigmas(num_blocks: int, sigma: float, first_noisy: int) -> list[float]:
    """``sigma_l`` for blocks ``0 .. num_blocks - 1`` and the head (index ``num_blocks``)."""
    span = num_blocks + 1 - first_noisy
    return [0.0 if index < first_noisy else sigma * (num_blocks + 1 - index) / span
            for index in range(num_blocks + 1)]


def site_depth(name: str, block_names: list[str]) -> int:
    """The index of the block holding the module ``name``; after the last block otherwise (the head)."""
    for index, block in enumerate(block_names):
        if name.startswith(block + "."):
            return index
    return len(block_names)


class PaceNoise:
    """The noise hooks of one model; :meth:`remove` takes them off again."""

    def __init__(self, model: nn.Module, sites: list[PaceSite], sigma: float):
        block_names = [name for name, _ in transformer_blocks(model)]
        first_noisy = 1 if len(block_groups(model)) == 1 else 0
        sigmas = block_sigmas(len(block_names), sigma, first_noisy)
        head = classifier(model)
        sites = [*sites, PaceSite(qualified_name(model, head), head)]
        self.sites = sites
        self.sigmas = {site.name: sigmas[site_depth(site.name, block_names)] for site in sites}
        self._generator: torch.Generator | None = None
        self._seed, self._seeded = 0, False  # the step's seed, and whether the generator has taken it
        self._handles = [site.module.register_forward_hook(functools.partial(self._perturb, site, self.sigmas[site.name]))
                         for site in sites if self.sigmas[site.name] > 0]

    def reseed(self, seed: int) -> None:
        """Start the noise of the coming step from ``seed`` (drawn from torch's global generator)."""
        self._seed, self._seeded = seed, False

    def _noise(self, like: torch.Tensor, sigma: float) -> torch.Tensor:
        if self._generator is None or self._generator.device != like.device:
            self._generator = torch.Generator(device=like.device)  # on the device of the outputs it perturbs
            self._seeded = False
        if not self._seeded:
            self._generator.manual_seed(self._seed)
            self._seeded = True
        shape = (like.shape[0], *([1] * (like.ndim - 2)), like.shape[-1])
        draw = torch.randn(shape, generator=self._generator, device=like.device, dtype=like.dtype)
        return draw * sigma + 1

    def _perturb(self, site: PaceSite, sigma: float, module: nn.Module, args: tuple[Any, ...],
                 output: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return output
        with torch.no_grad():
            noise = self._noise(output, sigma)
        if site.base is None:
            return output * noise
        base = site.base(args)
        return base + (output - base) * noise

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def install_pace_noise(model: nn.Module, method: str, sigma: float) -> PaceNoise:
    """Put PACE's noise on every adapter output of ``model`` (adapted by ``method``) and its head."""
    from adaptcli.methods.apply import get_method

    noise = PaceNoise(model, get_method(method).pace_sites(model), sigma)
    object.__setattr__(model, "pace_noise", noise)  # the training step reseeds it; not a submodule
    return noise


def pace_noise_of(model: nn.Module) -> PaceNoise | None:
    """The :class:`PaceNoise` installed on ``model`` (or on the module DDP wraps), if any."""
    return getattr(getattr(model, "module", model), "pace_noise", None)
