"""``adaptcli finetune`` as a function (the CLI is a thin layer over it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError, Interrupted
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
    if manifest.num_classes < 2:
        raise AdaptError(f"{data_dir} has {manifest.num_classes} class(es); classification needs at least two "
                         "(check the class folders given to adaptcli prepare)")
    tracker_names(config.train.log_with)  # an unknown or missing tracker fails before touching --out
    lock = run.prepare(config, resume=resume, overwrite=overwrite, data=Path(data_dir)) if state.is_main_process else None
    try:
        fresh = not run.is_run()  # also a --resume of a run killed before it wrote anything
        state.wait_for_everyone()
        trainer = Trainer(config, Path(data_dir), run, resume=resume)
        trainer.setup()
        if state.is_main_process and fresh:
            run.write_config(config, {
                "data": str(Path(data_dir).resolve()),
                "dataset": manifest.dataset,
                "modality": manifest.modality,
                "classes": manifest.classes,
                "num_classes": manifest.num_classes,
                "state": "running", "epoch": 0, "step": 0,
            })
            _save_frozen_backbone(trainer, run)
        elif state.is_main_process:
            run.set_state("running", epoch=trainer.state.epoch, step=trainer.state.step)
        summary = trainer.train()
        if state.is_main_process:
            write_json(run.summary_file, summary)
            run.set_state("finished", epoch=trainer.state.epoch, step=trainer.state.step)
        trainer.cleanup()
        return summary
    except Interrupted:
        raise  # the trainer recorded the state and the checkpoint
    except BaseException as exc:
        if state.is_main_process and run.info_file.is_file():
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            run.set_state("interrupted", reason=f"{type(exc).__name__}: {reason}")
        raise
    finally:
        if lock is not None:
            lock.release()


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
