"""A weight EMA for training (``train.ema: DECAY``): timm's ``ModelEmaV3`` over the adapted model.

It updates after every optimiser step, is validated next to the raw weights (``ema_val_top1`` or
``ema_val_mAP`` in each epoch's record) and chooses the best epoch (``best.safetensors`` then holds
the average, as timm's train.py selects on its EMA), and its trainable tensors are saved as their own weights:
``RUN/ema.safetensors`` (same header as ``trainable.safetensors``) and ``ema.safetensors`` inside every
checkpoint, so ``--resume`` continues the average exactly. Only the run's trainable tensors are saved:
the frozen ones never change, so their average is themselves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.io import save_tensors
from adaptcli.runs.session import Session

EMA_FILE = "ema.safetensors"


class WeightEma:
    """timm's ``ModelEmaV3`` with the run's save and load of trainable tensors."""

    def __init__(self, model: nn.Module, decay: float, names: set[str]):
        from timm.utils import ModelEmaV3

        self.average = ModelEmaV3(model, decay=decay)
        self.names = set(names)

    @property
    def module(self) -> nn.Module:
        return self.average.module

    def update(self, model: nn.Module, step: int) -> None:
        self.average.update(model, step=step)

    def tensors(self) -> dict[str, torch.Tensor]:
        state = self.module.state_dict()
        return {name: state[name].detach().clone() for name in sorted(self.names)}

    def save_into_checkpoint(self, staged: Path) -> dict[str, torch.Tensor]:
        """Write the averaged tensors into a checkpoint folder being staged; returns them (gathered once)."""
        averaged = self.tensors()
        save_tensors(staged / EMA_FILE, averaged, {"format": "adaptcli.ema/1"})
        return averaged

    def validate(self, session: Session, accelerator: Any, split: str) -> tuple[dict[str, float], float]:
        """The average's validation values (``ema_val_top1``, ...) and its headline value."""
        from adaptcli.engine.evaluate import validate

        values, headline = validate(dataclasses.replace(session, model=self.module), accelerator, split)
        return {f"ema_{key}": value for key, value in values.items()}, headline

    def load(self, path: Path) -> None:
        """Put back the averaged tensors a checkpoint saved (``load_file``: no pickle)."""
        from safetensors.torch import load_file

        saved = load_file(str(path))
        missing = self.names - set(saved)
        if missing:
            raise ValueError(f"{path} lacks {len(missing)} averaged tensor(s), e.g. {sorted(missing)[0]}")
        self.module.load_state_dict({k: v for k, v in saved.items() if k in self.names}, strict=False)


def save_ema_weights(path: Path, averaged: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """The averaged tensors as a run's weights file (the trainable weights' header, ``weights: ema``)."""
    save_tensors(path, averaged, {**metadata, "weights": "ema"})
