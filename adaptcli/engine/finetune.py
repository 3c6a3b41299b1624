"""``adaptcli finetune`` and ``adaptcli eval`` as functions (the CLI is a thin layer over these)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptcli.config import RunConfig
from adaptcli.engine.run_dir import RunDir
from adaptcli.errors import AdaptError


def finetune(config: RunConfig, data_dir: Path, out: Path, *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train ``config`` on the shards in ``data_dir`` into the run folder ``out``; returns the summary."""
    from adaptcli.data.manifest import read_manifest
    from adaptcli.engine.distributed import partial_state
    from adaptcli.engine.trainer import Trainer
    from adaptcli.io import write_json

    state = partial_state()
    run = RunDir(Path(out))
    manifest = read_manifest(data_dir)  # fail early, before touching --out
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
    from adaptcli.engine.weights import save_tensors
    from adaptcli.methods import frozen_backbone_state

    config = trainer.config
    if config.model.checkpoint or config.method == "full":
        return
    # Plain backbone key names: the file is also a valid --checkpoint for adapter-only files.
    frozen = frozen_backbone_state(trainer.model)
    save_tensors(run.backbone_file, frozen, {"format": "adaptcli.backbone/1", "backbone": config.model.name})


def load_run_model(run: RunDir, *, weights: Path | None = None, quiet: bool = True):
    """Rebuild a run's adapted model: backbone (checkpoint or saved frozen weights) + trained tensors."""
    from adaptcli.engine.setup import build_adapted_model
    from adaptcli.engine.weights import adapted_keys, load_into, load_tensors

    config, info = run.config(), run.info()
    model = build_adapted_model(config, info["num_classes"], quiet=quiet)
    if run.backbone_file.exists():
        frozen, _ = load_tensors(run.backbone_file)
        load_into(model, adapted_keys(model, frozen), f"{run.backbone_file}")
    trained, _ = load_tensors(weights or run.selected_weights())
    load_into(model, trained, "the run's weights")
    return model.eval(), config, info


def evaluate_run(run_path: Path, *, data: Path | None = None, split: str = "test", views: str | None = None) -> dict[str, Any]:
    """Evaluate a finished run; writes ``eval.json`` in the run folder and returns the metrics."""
    from adaptcli.engine.distributed import partial_state
    from adaptcli.io import write_json

    run = RunDir(Path(run_path))
    model, config, info = load_run_model(run)
    metrics = evaluate_loaded(model, config, info["num_classes"], Path(data or info["data"]), split, views)
    metrics.update(run=str(run.path))
    if partial_state().is_main_process:
        write_json(run.eval_file, metrics)
    return metrics


def evaluate_loaded(model: Any, config: RunConfig, num_classes: int, data_dir: Path, split: str = "test",
                    views: str | None = None) -> dict[str, Any]:
    """Metrics of an adapted (or deployed) model built for ``config`` on ``split`` of ``data_dir``."""
    from accelerate import Accelerator

    from adaptcli.data.loader import StreamSpec
    from adaptcli.data.manifest import read_manifest
    from adaptcli.engine.distributed import force_cpu
    from adaptcli.engine.evaluate import evaluate_model, parse_views
    from adaptcli.engine.setup import check_modality, normalisation

    manifest = read_manifest(data_dir)
    check_modality(model, manifest.modality, config.model.name)
    if manifest.num_classes != num_classes:
        raise AdaptError(
            f"{data_dir} has {manifest.num_classes} classes but the run was trained on {num_classes}; "
            "pass shards of the same dataset"
        )
    accelerator = Accelerator(cpu=force_cpu(), mixed_precision=config.train.precision)
    model = model.to(accelerator.device)
    view_pair = parse_views(views or config.eval.views)
    if manifest.modality == "image":
        view_pair = (1, 1)
    norm = normalisation(model)
    spec = StreamSpec.from_config(config.data, config.model.img_size, config.model.num_frames, norm.mean, norm.std)
    metrics = evaluate_model(model, accelerator, data_dir, split, spec, config, manifest, views=view_pair,
                             show=accelerator.is_main_process)
    metrics.update(data=str(data_dir), method=config.method, backbone=config.model.name)
    return metrics


def summary_lines(summary: dict[str, Any]) -> list[str]:
    best = summary.get("best_val_top1")
    return [
        f"method {summary['method']} on {summary['backbone']}: {summary['trainable_params']:,} trainable parameters "
        f"({summary['trainable_percent']:.3f}% of the backbone)",
        f"{summary['epochs']} epochs, {summary['steps']} steps in {summary['train_seconds']:.1f} s "
        f"({summary['samples_per_second']} samples/s), final loss {summary['final_loss']:.4f}",
        (f"best validation top-1 {best:.2f} at epoch {summary['best_epoch']}" if best is not None
         else "no validation split: the last epoch is kept"),
    ]


def json_dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)
