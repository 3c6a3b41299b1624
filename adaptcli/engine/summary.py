"""What one training session saw and how it ended, as a :class:`~adaptcli.runs.results.TrainSummary`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptcli.data.stream.batch import Batch
from adaptcli.engine.memory import peak_memory_mb
from adaptcli.runs.checkpoint import TrainState
from adaptcli.runs.results import METRIC_LABELS, TrainSummary
from adaptcli.runs.session import Session

PARAM_KEYS = ("backbone_params", "method_params", "head_params", "trainable_params", "trainable_percent", "mergeable")


@dataclass
class SessionStats:
    """Counters of this process's training session (a resumed run counts from the resume)."""

    damaged: dict[str, str] = field(default_factory=dict)  # training shards the stream skipped -> first reason
    skipped_samples: int = 0
    samples: int = 0  # samples trained on, all processes
    step_seconds: float = 0.0  # time inside training steps
    steps_before: int = 0  # optimiser steps done before this session

    def add_batch(self, batch: Batch) -> None:
        self.damaged.update(batch.damaged)
        self.skipped_samples += batch.skipped


def train_summary(session: Session, state: TrainState, stats: SessionStats, *, accelerator: Any, lr: float,
                  feature_cache: bool, seconds: float, loss: float, data_wait: float | None = None,
                  probes: int = 1) -> TrainSummary:
    """``seconds``: this session's wall time (the samples/s of the samples it trained); the run's train time is
    ``state.train_seconds``, summed over every part of a resumed run. ``data_wait``: the share of the
    training loops' wall time spent waiting for batches. ``probes``: how many probes a probe grid trained
    (the parameter counts are all of theirs)."""
    from adaptcli.runs.params import parameter_report

    config = session.config
    report = parameter_report(session.model, session.adapt, probes=probes)
    peak_mb, memory_kind = peak_memory_mb(accelerator.device)
    steps_here = state.step - stats.steps_before
    return TrainSummary(
        method=config.method, backbone=config.model.name, data=str(session.shards.path),
        epochs=state.epoch, steps=state.step, final_loss=loss, task=session.manifest.task,
        best_epoch=state.best_epoch, best_val=state.best_value, train_seconds=round(state.train_seconds, 2),
        samples_per_second=round(stats.samples / seconds, 2) if seconds > 0 else None,
        seconds_per_step=round(stats.step_seconds / steps_here, 5) if steps_here else None,
        peak_memory_mb=peak_mb, peak_memory_kind=memory_kind, feature_cache=feature_cache,
        damaged_shards={Path(url).name: reason for url, reason in sorted(stats.damaged.items())},
        skipped_samples=stats.skipped_samples, processes=accelerator.num_processes,
        precision=accelerator.mixed_precision, compiled=config.train.compile, effective_lr=lr,
        **{key: report[key] for key in PARAM_KEYS},
        data_wait=None if data_wait is None else round(data_wait, 4),
    )


def epoch_line(record: dict[str, Any], metric: str) -> str:
    """``epoch N: loss L[, val top-1 V]`` (mAP for multi-label data)."""
    val = record.get(f"val_{metric}")
    shown = f", val {METRIC_LABELS[metric]} {val:.2f}" if f"val_{metric}" in record else ""
    return f"epoch {record['epoch']}: loss {record['loss']:.4f}{shown}"


def epoch_record(epoch: int, step: int, loss: float, lr: float, seconds: float, samples: int,
                 accelerator: Any) -> dict[str, Any]:
    """The ``metrics.jsonl`` record of a training epoch (validation values are added to it)."""
    return {"event": "train", "epoch": epoch + 1, "step": step, "loss": loss, "lr": lr, "seconds": seconds,
            "samples_per_second": samples / max(seconds, 1e-9), "peak_memory_mb": peak_memory_mb(accelerator.device)[0]}
