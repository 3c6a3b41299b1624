"""``adaptcli finetune`` as a function (the CLI is a thin layer over it)."""

from __future__ import annotations

from pathlib import Path

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError, Interrupted
from adaptcli.methods.registry import method_spec
from adaptcli.output import Output
from adaptcli.runs.folder import RunDir
from adaptcli.runs.results import TrainSummary
from adaptcli.runs.session import Session


def finetune(config: RunConfig, data_dir: Path, out: Path, *, resume: bool = False, overwrite: bool = False,
             output: Output | None = None) -> TrainSummary:
    """Train ``config`` on the shards in ``data_dir`` into the run folder ``out``; returns the summary.

    Progress lines go to ``output.echo`` (stdout by default), notes to ``output.warn`` (stderr).
    """
    from adaptcli.data.manifest import read_manifest
    from adaptcli.engine.distributed import partial_state
    from adaptcli.engine.tracking import tracker_names
    from adaptcli.engine.trainer import Trainer
    from adaptcli.runs import record

    state = partial_state()
    main = state.is_main_process
    output = (output or Output()).main_only(main)
    run = RunDir(Path(out))
    manifest = read_manifest(data_dir)  # fail early, before touching --out
    if manifest.num_classes < 2:
        raise AdaptError(f"{data_dir} has {manifest.num_classes} class(es); classification needs at least two "
                         "(check the class folders given to adaptcli prepare)")
    tracker_names(config.train.log_with)  # an unknown or missing tracker fails before touching --out
    lock = run.prepare(config, resume=resume, overwrite=overwrite, data=Path(data_dir), output=output) if main else None
    try:
        fresh = not run.is_run()  # also a --resume of a run killed before it wrote anything
        state.wait_for_everyone()
        session = Session.for_training(config, Path(data_dir), manifest, output)
        trainer = Trainer.setup(session, run, resume=resume)
        if main and fresh:
            record.start_run(run, config, data_dir, manifest)
            _save_frozen_backbone(session, run)
        elif main:
            record.mark_running(run, trainer.state.epoch, trainer.state.step)
        summary = trainer.train()
        if main:
            record.mark_finished(run, summary, trainer.state.epoch, trainer.state.step)
        trainer.cleanup()
        return summary
    except Interrupted:
        raise  # the trainer recorded the state and the checkpoint
    except BaseException as exc:
        if main:
            record.mark_failed(run, exc)
        raise
    finally:
        if lock is not None:
            lock.release()


def _save_frozen_backbone(session: Session, run: RunDir) -> None:
    """Without a checkpoint file the frozen weights exist only in memory: keep them with the run."""
    from adaptcli.io import save_tensors
    from adaptcli.methods.apply import frozen_backbone_state

    config = session.config
    if config.model.checkpoint or method_spec(config.method).trains_backbone:
        return
    # Plain backbone key names: the file is also a valid --checkpoint for adapter-only files.
    frozen = frozen_backbone_state(session.model, session.adapt)
    save_tensors(run.backbone_file, frozen, {"format": "adaptcli.backbone/1", "backbone": config.model.name})
