"""What ``run.json`` and ``summary.json`` say about a run's progress: the only writers of its state.

States: ``running`` (with the epoch, step and checkpoint reached), ``interrupted`` (with the
reason), ``finished``. Called on the main process only.
"""

from __future__ import annotations

from pathlib import Path

from dataclasses import replace
from typing import TYPE_CHECKING

from adaptcli.data.manifest import MANIFEST_NAME
from adaptcli.runs.folder import RunDir
from adaptcli.files import file_sha256
from adaptcli.runs.info import RunInfo
from adaptcli.runs.results import TrainSummary

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.runs.session import Session


def start_run(run: RunDir, session: Session) -> None:
    """A new run: its configuration and ``run.json`` (what it is trained on and how; state running at 0)."""
    from adaptcli.runs.build import normalisation

    config, manifest, data_dir = session.config, session.manifest, session.shards.path
    norm = normalisation(session.model)
    checkpoint = Path(config.model.checkpoint).resolve() if config.model.checkpoint else None
    info = RunInfo(
        data=str(data_dir.resolve()), dataset=manifest.dataset, modality=manifest.modality,
        classes=list(manifest.classes), num_classes=manifest.num_classes, task=manifest.task,
        method=config.method, model=config.model.name, mean=list(norm.mean), std=list(norm.std),
        views=config.eval.views, data_fingerprint=file_sha256(data_dir / MANIFEST_NAME),
        backbone_file=str(checkpoint) if checkpoint else None,
        backbone_sha256=file_sha256(checkpoint) if checkpoint else None,
        state="running", epoch=0, step=0,
    )
    run.write_config(config, info)


def record_kept_backbone(run: RunDir) -> None:
    """The run keeps its frozen backbone (``backbone.safetensors``, written after ``run.json``): name it and its hash."""
    info = run.stored_info()
    run.write_info(replace(info, backbone_file=run.backbone_file.name, backbone_sha256=file_sha256(run.backbone_file)))


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
    summary.write(run.summary_file)
    run.set_state("finished", epoch=epoch, step=step)
