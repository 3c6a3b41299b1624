"""Optimiser over the trainable parameters and the warm-up + cosine schedule (per optimiser step)."""

from __future__ import annotations

import torch
from torch import nn

from adaptcli.config import TrainConfig
from adaptcli.errors import AdaptError

#: Tokens, position tables and prompts never decay (besides timm's rule: 1-D tensors and biases).
NO_DECAY_NAMES = ("pos_embed", "cls_token", "reg_token", "vpt.", "prompt", "dist_token", "temporal_embedding")


def effective_lr(train: TrainConfig, world_size: int) -> float:
    """``lr * effective batch / lr_base_batch`` when the recipe scales it, else ``lr``."""
    if train.lr_base_batch is None:
        return train.lr
    return train.lr * train.batch_size * train.accum_steps * world_size / train.lr_base_batch


def parameter_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """timm's decay / no-decay groups (``param_groups_weight_decay``), tokens and prompts exempt too;
    with ``layer_decay``, timm's ``param_groups_layer_decay`` (each group carries its ``lr_scale``, which
    timm's schedulers apply)."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    exempt = [name for name, _ in model.named_parameters()
              if name in skip or any(token in name for token in NO_DECAY_NAMES)]
    if layer_decay is not None:
        groups = param_groups_layer_decay(model, weight_decay, no_weight_decay_list=exempt, layer_decay=layer_decay)
    else:
        groups = param_groups_weight_decay(model, weight_decay, no_weight_decay_list=exempt)
    return [group for group in groups if group["params"]]


#: Parameter groupings adaptcli built before, as (model attribute, its value then, what it did): a run
#: checkpointed with one resumes with it, since its saved optimiser state fits only those groups.
EARLIER_GROUPINGS = [
    ("fc_norm_group", "last_block", "fc_norm in the last block's layer-decay group, as adaptcli trained the video "
                                    "ViT before it followed VideoMAE's grouping"),
]

#: A parameter group's shape as an optimiser's state dict keeps it: (number of parameters, lr_scale or None).
GroupShape = tuple[int, "float | None"]


def optimizer_groups(model: nn.Module, train: TrainConfig) -> list[dict]:
    """The parameter groups :func:`build_optimizer` gives the optimiser."""
    groups = parameter_groups(model, train.weight_decay, train.layer_decay)
    if train.loraplus_ratio is not None:
        from adaptcli.engine.loraplus import loraplus_groups

        groups = loraplus_groups(model, groups, train.loraplus_ratio)
    return groups


def group_shapes(groups: list[dict]) -> list[GroupShape]:
    return [(len(group["params"]), group.get("lr_scale")) for group in groups]


def match_saved_groups(model: nn.Module, train: TrainConfig, saved: list[GroupShape], checkpoint: str) -> str | None:
    """Make ``model`` build the parameter groups a checkpoint's optimiser state was saved with: None when
    today's grouping fits it (the same group sizes: torch then restores each group's saved lr_scale, as it
    always did), else what the earlier grouping it switched to did (:data:`EARLIER_GROUPINGS`, matched on sizes
    and scales). A one-line error when no grouping fits (torch could not load the state)."""
    built = group_shapes(optimizer_groups(model, train))
    if [size for size, _ in built] == [size for size, _ in saved]:
        return None
    for attribute, value, meaning in EARLIER_GROUPINGS:
        if not hasattr(model, attribute):
            continue
        today = getattr(model, attribute)
        setattr(model, attribute, value)
        if group_shapes(optimizer_groups(model, train)) == saved:
            return meaning
        setattr(model, attribute, today)
    raise AdaptError(
        f"checkpoint {checkpoint} holds optimiser state for {len(saved)} parameter groups of "
        f"{[size for size, _ in saved]} tensors, these settings build {len(built)} of {[size for size, _ in built]}: "
        "resume with the adaptcli version and settings the run was started with, or start again with --overwrite"
    )


def build_optimizer(model: nn.Module, train: TrainConfig, lr: float) -> torch.optim.Optimizer:
    return optimizer_over(optimizer_groups(model, train), train, lr)


def optimizer_over(groups: list[dict], train: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """``train.optimizer`` over parameter ``groups`` (``lr`` for groups that set none)."""
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=train.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig, steps_per_epoch: int, lr: float):
    """timm's ``CosineLRScheduler``: warm-up from ``warmup_lr``, cosine to ``min_lr``, then the cool-down.

    Counted in optimiser steps (``schedule_unit: step``) or in epochs (``epoch``: the lr changes once
    per epoch, as in timm's train.py and Adapter+'s scheduler). Either way the caller calls
    ``step_update(num_updates=steps_done)`` after every optimiser step.
    """
    from timm.scheduler import CosineLRScheduler

    per_epoch = train.schedule_unit == "epoch"
    unit = 1 if per_epoch else steps_per_epoch
    total = max(1, (train.epochs - train.cooldown_epochs) * unit)
    warmup = min(int(round(train.warmup_epochs * unit)), total - 1)
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=max(1, total - warmup) if train.warmup_prefix else total,
        lr_min=train.min_lr,
        warmup_t=warmup,
        warmup_lr_init=train.warmup_lr if train.warmup_lr is not None else (lr / (warmup + 1) if warmup else 0.0),
        warmup_prefix=train.warmup_prefix,
        t_in_epochs=per_epoch,
    )
    return EpochScheduler(scheduler, steps_per_epoch) if per_epoch else scheduler


class EpochScheduler:
    """An epoch-counted timm scheduler driven by the trainer's per-step calls: it moves to epoch
    ``steps_done // steps_per_epoch`` (so a mid-epoch resume lands on the same lr)."""

    def __init__(self, scheduler, steps_per_epoch: int):
        self.scheduler, self.steps_per_epoch = scheduler, max(1, steps_per_epoch)

    def step_update(self, num_updates: int) -> None:
        self.scheduler.step(num_updates // self.steps_per_epoch)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)
