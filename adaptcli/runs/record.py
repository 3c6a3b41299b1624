"""What ``run.json`` and ``summary.json`` say about a run's progress: the only writers of its state.

States: ``running`` (with the epoch, step and checkpoint reached), ``interrupted`` (with the
reason), ``finished``. Called on the main process only.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.config import RunConfig
from adaptcli.data.manifest import Manifest
from adaptcli.io import write_json
from adaptcli.runs.folder import RunDir
from adaptcli.runs.results import TrainSummary


def start_run(run: RunDir, config: RunConfig, data_dir: Path, manifest: Manifest) -> None:
    """A new run: its configuration and ``run.json`` (data, classes, modality; state running at 0)."""
    run.write_config(config, {
        "data": str(Path(data_dir).resolve()),
        "dataset": manifest.dataset,
        "modality": manifest.modality,
        "classes": manifest.classes,
        "num_classes": manifest.num_classes,
        "state": "running", "epoch": 0, "step": 0,
    })


def mark_running(run: RunDir, epoch: int, step: int, checkpoint: str | None = None) -> None:
    fields = {"checkpoint": checkpoint} if checkpoint is not None else {}
    run.set_state("running", epoch=epoch, step=step, **fields)


def mark_interrupted(run: RunDir, epoch: int, step: int, checkpoint: str, reason: str) -> None:
    """A stop signal: the checkpoint the run continues from with ``--resume``."""
    run.set_state("interrupted", epoch=epoch, step=step, checkpoint=checkpoint, reason=reason)


def mark_failed(run: RunDir, exc: BaseException) -> None:
    """An error ended the run (only once ``run.json`` exists: nothing is created for a run that never started)."""
    if run.info_file.is_file():
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        run.set_state("interrupted", reason=f"{type(exc).__name__}: {reason}")


def mark_finished(run: RunDir, summary: TrainSummary, epoch: int, step: int) -> None:
    """``summary.json``, then the state: a finished run always has its summary."""
    write_json(run.summary_file, summary.to_dict())
    run.set_state("finished", epoch=epoch, step=step)
