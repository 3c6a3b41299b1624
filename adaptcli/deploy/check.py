"""Self-checks of an export: the same random batch through two models."""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError

#: Largest absolute logit difference an export may show against the run's model (float32).
TOLERANCE = 1e-4


def random_batch(config: RunConfig, video: bool, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A seeded normal batch in the run's input shape (``B x 3 [x T] x H x W``)."""
    size = config.model.img_size
    shape = (batch, 3, config.model.num_frames, size, size) if video else (batch, 3, size, size)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator)


@torch.no_grad()
def max_abs_difference(reference: nn.Module, candidate: nn.Module, inputs: torch.Tensor) -> float:
    """``max |reference(x) - candidate(x)|`` with both models in float32 eval mode."""
    outputs = []
    for model in (reference, candidate):
        was_training = model.training
        model.float().eval()
        outputs.append(model(inputs.float()))
        model.train(was_training)
    return float((outputs[0] - outputs[1]).abs().max())


def check_difference(diff: float, check: str) -> None:
    """Refuse an export whose logits differ from the run's model by more than :data:`TOLERANCE`.

    ``check`` names the check in the message (``merge check``)."""
    if not diff <= TOLERANCE:  # also catches NaN
        raise AdaptError(
            f"{check} failed: max |difference| = {diff:.3g} > {TOLERANCE:g} against the run's model; "
            "nothing was written"
        )
