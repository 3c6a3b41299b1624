"""Optimiser over the trainable parameters and the warm-up + cosine schedule (per optimiser step)."""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.config import TrainConfig

#: Tokens, position tables and prompts never decay (besides timm's rule: 1-D tensors and biases).
NO_DECAY_NAMES = ("pos_embed", "cls_token", "reg_token", "vpt.", "prompt", "dist_token")


def effective_lr(train: TrainConfig, world_size: int) -> float:
    """``lr * effective batch / lr_base_batch`` when the recipe scales it, else ``lr``."""
    if train.lr_base_batch is None:
        return train.lr
    return train.lr * train.batch_size * train.accum_steps * world_size / train.lr_base_batch


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """timm's decay / no-decay groups (``param_groups_weight_decay``), tokens and prompts exempt too."""
    from timm.optim import param_groups_weight_decay

    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    exempt = [name for name, _ in model.named_parameters()
              if name in skip or any(token in name for token in NO_DECAY_NAMES)]
    groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=exempt)
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, train: TrainConfig, lr: float) -> torch.optim.Optimizer:
    groups = parameter_groups(model, train.weight_decay)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=train.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig, steps_per_epoch: int, lr: float):
    """timm's ``CosineLRScheduler`` counted in optimiser steps: linear warm-up, then cosine to ``min_lr``.

    The caller calls ``step_update(num_updates=steps_done)`` after every optimiser step.
    """
    from timm.scheduler import CosineLRScheduler

    total = max(1, train.epochs * steps_per_epoch)
    warmup = min(int(round(train.warmup_epochs * steps_per_epoch)), total - 1)
    return CosineLRScheduler(
        optimizer,
        t_initial=max(1, total - warmup),
        lr_min=train.min_lr,
        warmup_t=warmup,
        warmup_lr_init=lr / (warmup + 1) if warmup else 0.0,
        warmup_prefix=True,
        t_in_epochs=False,
    )
