"""Self-checks of an export: the same random batch through two models."""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError

#: Largest absolute logit difference an export may show against the run's model (float32), unless float32
#: rounding alone moves the two models' logits further (:func:`rounding_limit`).
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


@torch.no_grad()
def rounding_limit(reference: nn.Module, candidate: nn.Module, inputs: torch.Tensor) -> float:
    """The limit for ``max |reference(x) - candidate(x)|`` in float32: :data:`TOLERANCE`, or twice the distance
    float32 rounding alone puts between each model's logits and its own float64 ones, where that is larger.

    Why: an export computes the run's function again (the merge folds ``W + BA`` into one float32 weight, a
    reloaded timm Swin uses timm's explicit window attention where the run used the fused one), so the two
    float32 results differ by rounding only. By the triangle inequality that difference is at most each model's
    own float32 error plus their float64 difference, which here comes from storing the weights in float32: the
    same half-ulp rounding, of the same order. Hence 2x: on a LoRA Swin moved far from identity (logits that
    rounding moves by 1e-3..2e-2) the difference was at most 1.01x the summed own errors over 8 seeds. A model
    whose logits rounding hardly moves keeps 1e-4; a wrong export (a weight missed, another architecture) moves
    logits by far more than any model's own rounding."""
    own = []
    for model in (reference, candidate):
        was_training, dtype = model.training, _float_dtype(model)
        model.eval()
        low = model.float()(inputs.float()).double()
        own.append(float((low - model.double()(inputs.double())).abs().max()))
        model.to(dtype).train(was_training)
    return max(TOLERANCE, 2 * sum(own))


def _float_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 for a model without one)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def checked_difference(reference: nn.Module, candidate: nn.Module, inputs: torch.Tensor, check: str) -> tuple[float, float]:
    """``(max |difference|, limit)`` of ``candidate`` against the run's model ``reference``; a one-line error
    naming ``check`` above the limit (:func:`rounding_limit`)."""
    diff = max_abs_difference(reference, candidate, inputs)
    limit = TOLERANCE if diff <= TOLERANCE else rounding_limit(reference, candidate, inputs)
    check_difference(diff, check, limit)
    return diff, limit


def check_difference(diff: float, check: str, limit: float = TOLERANCE) -> None:
    """Refuse an export whose logits differ from the run's model by more than ``limit``.

    ``check`` names the check in the message (``merge check``)."""
    if not diff <= limit:  # also catches NaN
        raise AdaptError(
            f"{check} failed: max |difference| = {diff:.3g} > {limit:.3g} against the run's model; "
            "nothing was written"
        )
