"""Experiment trackers through Accelerate (``--set train.log_with=tensorboard``).

The names are Accelerate's ``log_with`` values (``accelerate.utils.LoggerType``); the run folder is
the logging directory; the resolved configuration, flattened to scalars and strings, is the
hyper-parameters. ``metrics.jsonl`` stays the record: the trackers get the same per-epoch values.
"""

from __future__ import annotations

from typing import Any

from adaptcli.errors import AdaptError, ConfigError

#: pip requirement per tracker where it is not the tracker's own name.
INSTALL = {"tensorboard": "'adaptcli[tensorboard]'"}


def tracker_names(log_with: str | None) -> list[str]:
    """The trackers ``train.log_with`` names (comma-separated), each known to Accelerate and installed."""
    if not log_with:
        return []
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    known = [kind.value for kind in LoggerType]
    names = [name.strip() for name in log_with.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise ConfigError(f"train.log_with: unknown tracker '{name}'; Accelerate's log_with takes {', '.join(known)}")
    available = {str(getattr(kind, "value", kind)) for kind in get_available_trackers()}
    for name in names:
        if name != "all" and name not in available:
            raise AdaptError(f"train.log_with={name} needs the {name} package: pip install {INSTALL.get(name, name)}")
    return names


def flat_hyperparameters(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train/lr": 0.1, "model/name": "...", ...}``: numbers, booleans and strings only."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hyperparameters(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:  # None, lists
            flat[name] = str(value)
    return flat


def tracker_values(record: dict[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` epoch record as tracker scalars (``train/loss``, ``val/top1``, ...)."""
    names = {"loss": "train/loss", "lr": "train/lr", "samples_per_second": "train/samples_per_second",
             "peak_memory_mb": "system/peak_memory_mb", "val_top1": "val/top1", "val_top5": "val/top5", "val_mAP": "val/mAP"}
    return {tag: float(record[key]) for key, tag in names.items() if record.get(key) is not None}


def start_trackers(accelerator: Any, config: Any) -> None:
    """Open the trackers' run (``train.log_with``) with the flattened configuration as hyperparameters."""
    if tracker_names(config.train.log_with):
        accelerator.init_trackers("adaptcli", config=flat_hyperparameters(config.to_dict()))
