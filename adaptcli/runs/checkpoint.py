"""Checkpoint I/O of a run: the training state, the trainable weights, and resuming.

A checkpoint folder is Accelerate's ``save_state`` (model, optimiser, scheduler, random states)
plus ``state.json`` (:class:`TrainState`); it is written under a temporary name and renamed when
complete. ``trainable.safetensors`` (and ``best.safetensors``) hold the trainable tensors only.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.data.manifest import Manifest
from adaptcli.errors import AdaptError
from adaptcli.files import read_json
from adaptcli.io import atomic_path, save_tensors, write_json
from adaptcli.methods.base import AdaptInfo
from adaptcli.output import Output
from adaptcli.runs.folder import RunDir


@dataclass
class TrainState:
    """What a checkpoint records besides tensors (kept in ``state.json``)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps completed
    best_epoch: int | None = None
    best_value: float | None = None  # the best validation value of the run's headline metric (top-1 or mAP)
    history: list[dict[str, Any]] = field(default_factory=list)
    batch: int = 0  # batches of epoch ``epoch`` already trained (a mid-epoch checkpoint; 0 at epoch ends)
    loss_sum: float = 0.0  # running loss of those batches, so the epoch's record is the same after a resume
    loss_count: int = 0
    #: Training wall time of the run up to this checkpoint, summed over every part of an interrupted run:
    #: from the start of each part's training loop to its checkpoint, not the time between the parts.
    train_seconds: float = 0.0
    #: a probe grid's running loss per probe over those batches (written only for a grid)
    probe_loss_sums: list[float] = field(default_factory=list)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainState:
        """A saved state; files written before the rename hold ``best_top1`` (then also mAP). Files written
        before ``train_seconds`` resume with 0 carried: the run's train time then counts from the resume."""
        saved = dict(saved)
        if "best_top1" in saved:
            saved["best_value"] = saved.pop("best_top1")
        return cls(**saved)

    def to_dict(self) -> dict[str, Any]:
        saved = asdict(self)
        if not self.probe_loss_sums:  # a one-probe run's state.json keeps the keys it always had
            del saved["probe_loss_sums"]
        return saved

    def improves(self, value: float) -> bool:
        """Record ``value`` as the best so far (at the current epoch) when it is; whether it was."""
        if self.best_value is not None and value <= self.best_value:
            return False
        self.best_value, self.best_epoch = value, self.epoch
        return True


def trainable_only_hook(weights: Weights) -> Callable[[list[nn.Module], list[dict[str, torch.Tensor]], str], None]:
    """An Accelerate ``save_state`` pre-hook that keeps only the trainable tensors of ``weights``."""
    def hook(models: list[nn.Module], states: list[dict[str, torch.Tensor]], output_dir: str) -> None:
        keep_trainable_only(states, weights.names())

    return hook


def keep_trainable_only(weights: list[dict[str, torch.Tensor]], keep: set[str]) -> None:
    """Reduce each of Accelerate's state dicts to the keys in ``keep`` (in place).

    Checkpoints hold the trainable tensors only; the frozen backbone comes from its file.
    """
    for index, state in enumerate(weights):
        kept, storages = {}, set()
        for key, value in state.items():
            if _strip_prefix(key) not in keep:
                continue
            # safetensors refuses tensors that share memory (peft tuners with shared state, VeRA):
            # the second name gets its own copy, and loading writes the same values back.
            storage = value.untyped_storage().data_ptr()
            kept[key] = value.clone() if storage in storages else value
            storages.add(storage)
        weights[index] = kept


@dataclass
class Weights:
    """The trainable tensors of a run's adapted model, saved with a header that names the run."""

    model: nn.Module
    info: AdaptInfo
    config: RunConfig
    manifest: Manifest
    #: what is saved of the model's trainable state (a probe grid puts its chosen probe in); None: all of it
    tensors: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None

    def names(self) -> set[str]:
        from adaptcli.methods.apply import trainable_state_dict

        return set(trainable_state_dict(self.model, self.info))

    def save(self, path: Path, state: TrainState) -> None:
        """Write them (see :func:`~adaptcli.methods.apply.trainable_state_dict`) as safetensors."""
        from adaptcli.methods.apply import trainable_state_dict

        tensors = trainable_state_dict(self.model, self.info)
        if self.tensors is not None:
            tensors = self.tensors(tensors)
        save_tensors(path, tensors, self.metadata(state))

    def metadata(self, state: TrainState) -> dict[str, Any]:
        """The header of ``trainable.safetensors`` / ``best.safetensors``."""
        config, manifest = self.config, self.manifest
        return {"format": "adaptcli.trainable/1", "method": config.method, "backbone": config.model.name,
                "epoch": state.epoch, "step": state.step, "classes": manifest.classes,
                "modality": manifest.modality, "config": config.to_dict()}


def finish_checkpoint(run: RunDir, staged: Path, final: Path, state: TrainState, weights: Weights, keep: int) -> None:
    """Main process, after Accelerate saved into ``staged``: add ``state.json``, rename it to ``final``,
    write ``trainable.safetensors``, keep the last ``keep`` checkpoints, record the step in run.json."""
    from adaptcli.runs.record import mark_running

    write_json(staged / "state.json", state.to_dict())
    with atomic_path(final) as staging:
        staged.rename(staging)
    weights.save(run.trainable_file, state)
    run.prune_checkpoints(keep)
    mark_running(run, state.epoch, state.step, checkpoint=final.name)


def save_frozen_backbone(run: RunDir, model: nn.Module, info: AdaptInfo, config: RunConfig) -> bool:
    """Without a checkpoint file the frozen weights exist only in memory: keep them with the run
    (``backbone.safetensors``; nothing when the method trains the whole backbone). Whether it wrote it."""
    from adaptcli.methods.apply import frozen_backbone_state
    from adaptcli.methods.registry import method_spec

    if config.model.checkpoint or method_spec(config.method).trains_backbone:
        return False
    # Plain backbone key names: the file is also a valid --checkpoint for adapter-only files.
    frozen = frozen_backbone_state(model, info)
    save_tensors(run.backbone_file, frozen, {"format": "adaptcli.backbone/1", "backbone": config.model.name})
    return True


def load_last_checkpoint(run: RunDir, accelerator: Any, output: Output) -> tuple[TrainState, dict[str, Any]] | None:
    """Restore the run's last checkpoint into ``accelerator``: (its state, the random state the next step
    starts from); None without a checkpoint. Says which on ``output``."""
    checkpoints = run.checkpoint_dirs()
    if not checkpoints:
        output.warn(f"note: --resume: {run.path} has no checkpoint yet; training starts from step 0")
        return None
    last = checkpoints[-1]
    try:
        accelerator.load_state(str(last), strict=False)
        state = TrainState.from_dict(read_json(last / "state.json"))
    except (OSError, ValueError, RuntimeError, EOFError, TypeError, KeyError, pickle.UnpicklingError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AdaptError(f"checkpoint {last} is unreadable ({type(exc).__name__}: {first}); delete that folder "
                         "to resume from the one before, or start again with --overwrite") from None
    where = f", batch {state.batch} of epoch {state.epoch + 1}" if state.batch else ""
    output.echo(f"resumed from {last} (epoch {state.epoch}, step {state.step}{where})")
    return state, rng_state()


def saved_group_shapes(run: RunDir) -> tuple[Path, list[tuple[int, float | None]]] | None:
    """The run's last checkpoint and the (parameter count, lr_scale) of each parameter group its optimiser
    state holds; None without a checkpoint or a readable optimiser file (then resuming says why)."""
    from accelerate.utils import OPTIMIZER_NAME

    checkpoints = run.checkpoint_dirs()
    if not checkpoints:
        return None
    try:
        state = torch.load(checkpoints[-1] / f"{OPTIMIZER_NAME}.bin", map_location="cpu", weights_only=True, mmap=True)
        return checkpoints[-1], [(len(group["params"]), group.get("lr_scale")) for group in state["param_groups"]]
    except (OSError, ValueError, RuntimeError, EOFError, TypeError, KeyError, pickle.UnpicklingError):
        return None


def ema_checkpoint_file(run: RunDir) -> Path:
    """The weight EMA saved with the run's last checkpoint (``train.ema``)."""
    last = run.checkpoint_dirs()[-1]
    path = last / "ema.safetensors"
    if not path.is_file():
        raise AdaptError(f"checkpoint {last} has no ema.safetensors (it was saved without train.ema); resume with "
                         "the settings the run was started with, or start again with --overwrite")
    return path


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) random states, as Accelerate's ``load_state`` left them."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any] | None) -> None:
    if state is None:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _strip_prefix(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key

