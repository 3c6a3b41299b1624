"""``adaptcli finetune`` as a function (the CLI is a thin layer over it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptcli.config import RunConfig
from adaptcli.methods.registry import method_spec
from adaptcli.runs.folder import RunDir


def finetune(config: RunConfig, data_dir: Path, out: Path, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train ``config`` on the shards in ``data_dir`` into the run folder ``out``; returns the summary."""
    from adaptcli.data.manifest import read_manifest
    from adaptcli.engine.distributed import partial_state
    from adaptcli.engine.tracking import tracker_names
    from adaptcli.engine.trainer import Trainer
    from adaptcli.io import write_json

    state = partial_state()
    run = RunDir(Path(out))
    manifest = read_manifest(data_dir)  # fail early, before touching --out
    tracker_names(config.train.log_with)
    if state.is_main_process:
        run.prepare(config, resume=resume, overwrite=overwrite)
    state.wait_for_everyone()
    trainer = Trainer(config, Path(data_dir), run, resume=resume)
    trainer.setup()
    if state.is_main_process and not resume:
        run.write_config(config, {
            "data": str(Path(data_dir).resolve()),
            "dataset": manifest.dataset,
            "modality": manifest.modality,
            "classes": manifest.classes,
            "num_classes": manifest.num_classes,
        })
        _save_frozen_backbone(trainer, run)
    summary = trainer.train()
    if state.is_main_process:
        write_json(run.summary_file, summary)
    trainer.cleanup()
    return summary


def _save_frozen_backbone(trainer: Any, run: RunDir) -> None:
    """Without a checkpoint file the frozen weights exist only in memory: keep them with the run."""
    from adaptcli.io import save_tensors
    from adaptcli.methods.apply import frozen_backbone_state

    config = trainer.config
    if config.model.checkpoint or method_spec(config.method).trains_backbone:
        return
    # Plain backbone key names: the file is also a valid --checkpoint for adapter-only files.
    frozen = frozen_backbone_state(trainer.model)
    save_tensors(run.backbone_file, frozen, {"format": "adaptcli.backbone/1", "backbone": config.model.name})
