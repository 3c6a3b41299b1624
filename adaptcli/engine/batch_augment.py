"""Batch-level augmentation in the training process: timm's ``RandomErasing`` and ``Mixup`` (with CutMix).

Both work on image batches ``B x C x H x W``. A video batch ``B x C x T x H x W`` is viewed as
``B x (C*T) x H x W`` for them, so a clip gets one erased box and one CutMix box on every frame (as
VideoMAE's "cube" erasing and its video mixup do). Mixup's targets carry ``train.label_smoothing``;
the loss is then timm's ``SoftTargetCrossEntropy``. Randomness comes from Python's, numpy's and torch's
global generators, which the trainer seeds per epoch and checkpoints, so a resumed run repeats it.
"""

from __future__ import annotations

from typing import Any

import torch

from adaptcli.config import TrainConfig


class BatchAugment:
    """``(inputs, labels) -> (inputs, targets)``: erasing, then mixing; targets soft when mixing."""

    def __init__(self, train: TrainConfig, num_classes: int, device: torch.device | str):
        from timm.data import Mixup
        from timm.data.random_erasing import RandomErasing

        self.erasing = RandomErasing(train.random_erasing, mode="pixel", device=str(device)) \
            if train.random_erasing > 0 else None
        self.mixup = Mixup(mixup_alpha=train.mixup, cutmix_alpha=train.cutmix, prob=train.mixup_prob,
                           switch_prob=train.mixup_switch_prob, mode=train.mixup_mode,
                           label_smoothing=train.label_smoothing, num_classes=num_classes) \
            if train.mixup > 0 or train.cutmix > 0 else None

    @classmethod
    def of(cls, train: TrainConfig, num_classes: int, device: Any) -> "BatchAugment | None":
        """None when the recipe asks for none of them (the step stays as it was)."""
        augment = cls(train, num_classes, device)
        return augment if augment.erasing is not None or augment.mixup is not None else None

    @property
    def soft_targets(self) -> bool:
        return self.mixup is not None

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = inputs.flatten(1, 2) if inputs.dim() == 5 else inputs  # a view: edits reach ``inputs``
        if self.erasing is not None:
            self.erasing(flat)
        if self.mixup is not None:
            flat, labels = self.mixup(flat, labels)
        return flat.view(inputs.shape), labels
