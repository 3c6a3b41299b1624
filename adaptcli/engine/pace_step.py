"""PACE's two noisy passes and its consistency loss (Ni et al., NeurIPS 2024; MaxwellYaoNi/PACE).

The official ``compute_loss_pace`` runs the batch twice (as one doubled batch), takes the task loss on
the first pass's logits and adds ``lambda * mean_i ||logits1_i - logits2_i||^2``; gradients flow
through both passes. Here the passes run one after the other with the same global random state (the
second replays the first's drop-path and dropout masks, which the official ``SharableDropPath``
shares); only PACE's noise, from its own generator (:mod:`adaptcli.methods.pace`), differs.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.methods.pace import pace_noise_of


def consistency_loss(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Squared distance of the two passes' logits, summed over classes, averaged over samples (in float32 at
    least: autocast's half-precision logits are widened, float64 ones kept)."""
    dtype = torch.promote_types(first.dtype, torch.float32)
    return (first.to(dtype) - second.to(dtype)).square().sum(dim=-1).mean()


def noisy_passes(trained: nn.Module, inputs: torch.Tensor, two: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The logits of one pass with PACE's noise and, when ``two``, of a second one that differs from it
    only in the noise."""
    noise = pace_noise_of(trained)
    if noise is not None:
        noise.reseed(int(torch.randint(0, 2**62, ())))
    if not two:
        return trained(inputs), None
    devices = [inputs.device.index or 0] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the second pass starts from the same random state
        first = trained(inputs)
    return first, trained(inputs)
