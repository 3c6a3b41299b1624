"""Typed results of training (``summary.json``) and evaluation (``eval.json``), and the one rule for
the metric a run is selected and reported on.

The JSON files keep the keys they always had; these types are the only code that reads them by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from adaptcli.files import read_json
from adaptcli.io import write_json

#: How each headline metric is named in printed lines.
METRIC_LABELS = {"top1": "top-1", "mAP": "mAP"}


def headline_metric(multi_label: bool) -> str:
    """The metric a run is selected and reported on: ``mAP`` for multi-label data, else ``top1``."""
    return "mAP" if multi_label else "top1"


def metric_of_task(task: str | None) -> str:
    """:func:`headline_metric` of a ``task`` string (``single-label`` when unknown: older files)."""
    return headline_metric(task == "multi-label")


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{Path(path).name} is not a JSON object")
    return data


#: Keys added after 0.1, written only when known, so an older summary.json reads and writes back unchanged.
OPTIONAL_KEYS = ("data_wait", "probes")


@dataclass
class TrainSummary:
    """What a finished training session reports (``summary.json``; keys as written since 0.1)."""

    method: str | None = None
    backbone: str | None = None
    data: str | None = None
    epochs: int | None = None
    steps: int | None = None
    final_loss: float | None = None
    task: str = "single-label"
    best_epoch: int | None = None
    best_val: float | None = None  # written as ``best_val_<metric>``
    train_seconds: float | None = None  # training wall time of every part of the run, not the time between them
    samples_per_second: float | None = None
    seconds_per_step: float | None = None
    peak_memory_mb: float | None = None
    peak_memory_kind: str | None = None
    feature_cache: bool | None = None
    damaged_shards: dict[str, str] = field(default_factory=dict)
    skipped_samples: int | None = None
    processes: int | None = None
    precision: str | None = None
    compiled: bool | None = None
    effective_lr: float | None = None
    backbone_params: int | None = None
    method_params: int | None = None
    head_params: int | None = None
    trainable_params: int | None = None
    trainable_percent: float | None = None
    mergeable: bool | None = None
    data_wait: float | None = None  # share of the training loops' wall time spent waiting for batches
    #: a probe grid's probes: each one's lr, weight_decay, best_val_<metric> and best_epoch, final_loss, chosen
    probes: list[dict[str, Any]] | None = None

    @property
    def metric(self) -> str:
        return metric_of_task(self.task)

    @property
    def selected(self) -> str:
        return "best on validation" if self.best_epoch else "last epoch (no validation split)"

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` object, keys in their historical order."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        head = ("method", "backbone", "data", "epochs", "steps", "final_loss", "task")
        out = {key: values.pop(key) for key in head}
        out.update(metric=self.metric, best_epoch=values.pop("best_epoch"))
        out[f"best_val_{self.metric}"] = values.pop("best_val")
        out["selected"] = self.selected
        out.update({k: v for k, v in values.items() if k not in OPTIONAL_KEYS or v is not None})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSummary:
        """Any ``summary.json`` adaptcli wrote (older ones lack some keys: those are None)."""
        task = data.get("task") or ("multi-label" if data.get("metric") == "mAP" else "single-label")
        known = {f.name for f in fields(cls)} - {"task", "best_val"}
        summary = cls(**{k: v for k, v in data.items() if k in known}, task=task)
        summary.best_val = data.get(f"best_val_{summary.metric}")
        return summary

    @classmethod
    def read(cls, path: Path) -> TrainSummary:
        return cls.from_dict(_read_json(path))

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())


@dataclass
class EvalResult:
    """Metrics of one evaluation (``eval.json`` and ``eval --json``); a key is written only when set.

    Single-label: ``top1``, ``top5``, ``mean_class_acc``, ``per_class``; multi-label: ``mAP`` and the
    per-class AP fields. The rest says what was evaluated and how.
    """

    task: str
    samples: int
    top1: float | None = None
    top5: float | None = None
    mean_class_acc: float | None = None
    per_class: dict[str, float | None] | None = None
    mAP: float | None = None
    classes_evaluated: int | None = None
    classes_without_positives: int | None = None
    excluded_classes: list[str] | None = None
    per_class_ap: dict[str, float | None] | None = None
    scores_file: str | None = None
    split: str | None = None
    views: str | None = None
    missing_samples: int | None = None
    damaged_shards: dict[str, str] | None = None
    data: str | None = None
    method: str | None = None
    backbone: str | None = None
    run: str | None = None
    adapter: str | None = None
    checkpoint: str | None = None
    export: str | None = None  # eval --export PATH
    data_fingerprint: str | None = None  # SHA-256 of the evaluated data's dataset.json (None: written before it was recorded)

    @property
    def metric(self) -> str:
        return metric_of_task(self.task)

    @property
    def headline(self) -> float:
        """The value of :attr:`metric` (top-1, or mAP for multi-label data)."""
        return float(getattr(self, self.metric))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> EvalResult:
        return cls.from_dict(_read_json(path))

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())


__all__ = ["EvalResult", "METRIC_LABELS", "TrainSummary", "headline_metric", "metric_of_task"]
