"""Optimiser over the trainable parameters and the warm-up + cosine schedule (per step)."""

from __future__ import annotations

import math
import torch
from torch import nn

from adaptcli.config import TrainConfig

NO_DECAY_NAMES = ("pos_embed", "cls_token", "reg_token", "vpt.", "prompt", "dist_token")


def effective_lr(train: TrainConfig, world_size: int) -> float:
    """``lr * effective batch / lr_base_batch`` when the recipe scales it, else ``lr``."""
    if train.lr_base_batch is None:
        return train.lr
    return train.lr * train.batch_size * train.accum_steps * world_size / train.lr_base_batch


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and biases / norms / scales / tokens without weight decay."""
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name in skip or any(token in name for token in NO_DECAY_NAMES):
            no_decay.append(param)
        else:
            decay.append(param)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, train: TrainConfig, lr: float) -> torch.optim.Optimizer:
    groups = parameter_groups(model, train.weight_decay)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=train.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR multiplier per optimiser step: linear warm-up, then cosine down to ``min_ratio``."""

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig, steps_per_epoch: int, lr: float):
    total = max(1, train.epochs * steps_per_epoch)
    warmup = int(round(train.warmup_epochs * steps_per_epoch))
    min_ratio = train.min_lr / lr if lr > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup, min_ratio))
