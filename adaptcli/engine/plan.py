"""``finetune --dry-run``: what a run would do (configuration, data, model, parameters, steps), checked
the way the run checks it, with nothing trained and nothing written."""

from __future__ import annotations

from pathlib import Path

from adaptcli.config import RunConfig


def out_state(out: Path, resume: bool, overwrite: bool) -> str:
    """What finetune would do with ``--out`` (one it would refuse was refused by the checks already)."""
    from adaptcli.runs.folder import RunDir

    run = RunDir(out)
    if not run.is_run():
        return f"{out}: a new run folder"
    state = run.info().progress
    if resume:
        return f"{out}: a run ({state}); --resume continues it from its last checkpoint"
    return f"{out}: a run ({state}); --overwrite would replace what adaptcli wrote there"


def plan_lines(config: RunConfig, data: Path, out: Path, *, resume: bool = False, overwrite: bool = False,
               world_size: int = 1) -> list[str]:
    """The plan of ``finetune`` as lines; one-line errors for what the run would refuse before training
    (:func:`~adaptcli.engine.preflight.check_before_training`, the checks the run itself makes)."""
    from adaptcli.data.splits import validation_split
    from adaptcli.data.stream.train import steps_per_epoch
    from adaptcli.engine.preflight import check_before_training
    from adaptcli.runs.params import inspect_report

    shards = check_before_training(config, data, out, resume=resume, overwrite=overwrite)
    manifest = shards.manifest
    train_split, train = config.data.train_split, config.train
    samples = manifest.splits[train_split].samples
    steps = steps_per_epoch(samples, train.batch_size, world_size, train.max_steps_per_epoch)
    updates = max(1, steps // train.accum_steps) * train.epochs
    val = validation_split(config.data.val_split, manifest.splits, str(data))
    report = inspect_report(config, manifest.num_classes)
    return [
        config.to_yaml().rstrip("\n"),
        "",
        f"data: {data} ({manifest.dataset}, {manifest.modality}, {manifest.num_classes} classes, {manifest.task}); "
        f"train on '{train_split}' ({samples:,} samples)"
        + (f", validate on '{val}' ({manifest.splits[val].samples:,})" if val else ", no validation split"),
        f"model: {config.model.name} at {config.model.img_size} px"
        + (f", {config.model.num_frames} frames" if manifest.modality == "video" else "")
        + (f", weights from {config.model.checkpoint}" if config.model.checkpoint else ", random weights"),
        f"parameters: {report['trainable_params']:,} trainable ({report['trainable_percent']:.3f}% of the "
        f"backbone's {report['backbone_params']:,}): method {report['method_params']:,}, head {report['head_params']:,}"
        + (f", all {report['probes']} probes of the grid, on one backbone pass" if "probes" in report else ""),
        f"steps: {steps:,} per epoch x {train.epochs} epochs at batch {train.batch_size} x {world_size} "
        f"process(es) = {updates:,} optimiser steps",
        f"out: {out_state(Path(out), resume, overwrite)}",
        "dry run: nothing was trained or written",
    ]


__all__ = ["out_state", "plan_lines"]
