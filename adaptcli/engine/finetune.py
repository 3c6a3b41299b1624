"""``adaptcli finetune`` as a function (the CLI is a thin layer over it)."""

from __future__ import annotations

from pathlib import Path

from adaptcli.config import RunConfig
from adaptcli.errors import Interrupted
from adaptcli.output import Output
from adaptcli.runs.folder import RunDir
from adaptcli.runs.results import TrainSummary
from adaptcli.runs.session import Session


def finetune(config: RunConfig, data_dir: Path, out: Path, *, resume: bool = False, overwrite: bool = False,
             output: Output | None = None) -> TrainSummary:
    """Train ``config`` on the shards in ``data_dir`` into the run folder ``out``; returns the summary.

    Progress lines go to ``output.echo`` (stdout by default), notes to ``output.warn`` (stderr).
    """
    from adaptcli.engine.data_init import initialise_from_data
    from adaptcli.engine.distributed import partial_state
    from adaptcli.engine.preflight import check_before_training
    from adaptcli.engine.trainer import Trainer
    from adaptcli.ownership import remove_created, uncreated_top
    from adaptcli.runs import record
    from adaptcli.runs.checkpoint import save_frozen_backbone

    state = partial_state()
    main = state.is_main_process
    output = (output or Output()).main_only(main)
    run = RunDir(Path(out))
    # every refusal before training, before touching --out (finetune --dry-run runs the same checks)
    shards = check_before_training(config, data_dir, out, resume=resume, overwrite=overwrite, main=main)
    created = uncreated_top(run.path) if main else None
    lock = run.prepare(config, resume=resume, overwrite=overwrite, data=Path(data_dir), output=output) if main else None
    if resume and _finished(run):  # a requeue script's --resume after the end: nothing to do, nothing changed
        if lock is not None:
            lock.release()
        info = run.info()
        output.echo(f"{run.path} is finished ({info.epoch} epochs, step {info.step}); "
                    "nothing to resume: its files are unchanged")
        return TrainSummary.read(run.summary_file)
    try:
        fresh = not run.is_run()  # also a --resume of a run killed before it wrote anything
        if resume and not fresh:
            config = run.resumed_config(config)  # with the shapes its data pass chose (EVA's ranks)
        state.wait_for_everyone()
        session = Session.for_training(config, shards, output)
        if fresh:
            initialise_from_data(session, state.process_index, state.num_processes, state.device)
        trainer = Trainer.setup(session, run, resume=resume)
        if main and fresh:
            record.start_run(run, session)
            if save_frozen_backbone(run, session.model, session.adapt, config):
                record.record_kept_backbone(run)
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
            if created is not None and not run.info_file.exists():  # refused before it started: leave no folder
                remove_created(run.path, created)
        raise
    finally:
        if lock is not None:
            lock.release()



def _finished(run: RunDir) -> bool:
    """A run folder whose run.json says finished and whose summary.json is there."""
    if not run.is_run() or not run.summary_file.is_file():
        return False
    try:
        return run.info().state == "finished"
    except (OSError, ValueError):
        return False
