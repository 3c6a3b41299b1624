"""One training step: forward, loss, backward, clipping and the optimiser step under Accelerate."""

from __future__ import annotations

import time
from typing import Any

import torch
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from adaptcli.config import TrainConfig
from adaptcli.data.stream.batch import Batch
from adaptcli.engine.batch_augment import BatchAugment
from adaptcli.engine.pace_step import consistency_loss, noisy_passes


def timed_step(accelerator: Any, trained: nn.Module, optimizer: Any, batch: Batch, train: TrainConfig,
               multi_label: bool, augment: BatchAugment | None = None) -> tuple[list[float], bool, float]:
    """:func:`train_step` with compilation errors explained: (the loss, one per probe of a probe grid;
    optimiser stepped; seconds it took)."""
    from adaptcli.engine.compile import compile_errors

    start = time.perf_counter()
    with compile_errors(train.compile):
        loss, synced = train_step(accelerator, trained, optimizer, batch, train, multi_label, augment)
    values = loss.flatten().tolist()  # waits for the device, so the step time is real
    return values, synced, time.perf_counter() - start


def train_step(accelerator: Any, trained: nn.Module, optimizer: Any, batch: Batch, train: TrainConfig,
               multi_label: bool, augment: BatchAugment | None = None) -> tuple[torch.Tensor, bool]:
    """One forward/backward; the loss and whether an optimiser step happened (end of accumulation).

    Multi-label batches (labels ``B x C`` multi-hot) train with binary cross-entropy per class;
    ``augment`` (random erasing, mixup/cutmix) may turn labels into soft targets (soft cross-entropy).
    A probe grid (:class:`~adaptcli.engine.probe_grid.ProbeGrid`) returns ``N x B x C`` logits: each probe's
    loss (the returned loss has one per probe), their sum backpropagated (the probes share no parameter, so
    each one's gradient is its own loss's), and gradients clipped per probe.
    """
    acc = accelerator
    on_device = batch.to(acc.device)  # encoded frames (data.decode: cuda) are decoded there
    inputs, labels = on_device.inputs, on_device.labels
    if augment is not None:
        inputs, labels = augment(inputs, labels)
    with acc.accumulate(trained):
        second = None
        with acc.autocast():
            if train.pace_sigma:
                logits, second = noisy_passes(trained, inputs, two=bool(train.pace_lambda))
            else:
                logits = trained(inputs)
            if logits.ndim == 3:  # a probe grid
                loss = torch.stack([_loss(probe, labels, train, multi_label, augment) for probe in logits])
            else:
                loss = _loss(logits, labels, train, multi_label, augment)
            if second is not None:
                loss = loss + train.pace_lambda * consistency_loss(logits, second)
        acc.backward(loss.sum())
        if acc.sync_gradients and train.clip_grad:
            for parameters in _clipped_together(trained):
                acc.clip_grad_norm_(parameters, train.clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synced = acc.sync_gradients
    return loss.detach(), synced


def _loss(logits: torch.Tensor, labels: torch.Tensor, train: TrainConfig, multi_label: bool,
          augment: BatchAugment | None) -> torch.Tensor:
    if multi_label:
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
    if augment is not None and augment.soft_targets:  # smoothing is already in the targets
        return SoftTargetCrossEntropy()(logits.float(), labels)
    return nn.functional.cross_entropy(logits.float(), labels, label_smoothing=train.label_smoothing)


def _clipped_together(trained: nn.Module) -> list[Any]:
    """The parameter sets whose gradient norm is clipped as one: each probe of a probe grid, else all."""
    from adaptcli.engine.probe_grid import ProbeGrid

    unwrapped = getattr(trained, "module", trained)
    if isinstance(unwrapped, ProbeGrid):
        return unwrapped.probe_parameters()
    return [trained.parameters()]
