"""Evaluation: every sample once across processes, multi-view averaging for video; runs and loaded models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.engine.metrics import average_views, classification_metrics, multilabel_metrics
from adaptcli.errors import AdaptError


def parse_views(text: str) -> tuple[int, int]:
    """``"2x3"`` -> (2 clips, 3 crops)."""
    try:
        clips, crops = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise AdaptError(f"--views expects CLIPSxCROPS such as 2x3, got '{text}'") from None
    if clips < 1 or crops < 1:
        raise AdaptError(f"--views needs at least one clip and one crop, got '{text}'")
    return clips, crops


@torch.no_grad()
def predict(model: nn.Module, accelerator: Any, loader, show: bool = False,
            multi_label: bool = False, damaged: dict[str, str] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Softmax (multi-label: sigmoid) scores averaged over views, labels and keys of this process's share;
    the shards the loader skipped as damaged are added to ``damaged``."""
    from tqdm.auto import tqdm

    scores, labels, keys = [], [], []
    model.eval()
    for batch in tqdm(loader, disable=not show, desc="evaluating", unit="batch", dynamic_ncols=True):
        if damaged is not None:
            damaged.update(batch.get("damaged") or {})
        if "inputs" not in batch:
            continue
        inputs = batch["inputs"].to(accelerator.device, non_blocking=True)
        views = 1
        if inputs.ndim == 6:  # B x V x C x T x H x W
            views = inputs.shape[1]
            inputs = inputs.flatten(0, 1)
        with accelerator.autocast():
            logits = model(inputs)
        scores.append(average_views(logits, views, multi_label).cpu())
        labels.append(batch["labels"].cpu())
        keys.extend(batch["keys"])
    if not scores:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long), []
    return torch.cat(scores), torch.cat(labels), keys


def evaluate_model(model: nn.Module, accelerator: Any, data_dir: Path, split: str, spec: Any, config: RunConfig,
                   manifest: Any, views: tuple[int, int], show: bool = False,
                   scores_file: Path | None = None, skip_damaged: bool = False) -> dict[str, Any]:
    """Metrics of ``model`` on ``split``, identical on every process.

    ``scores_file``: also write every sample's scores and targets (sorted by key) as safetensors
    (``scores``: N x C, ``targets``: N or N x C; the keys and classes in the metadata).

    A damaged shard is an error naming it; with ``skip_damaged`` the other samples are evaluated and
    ``missing_samples`` / ``damaged_shards`` say what was left out.
    """
    from accelerate.utils import gather_object

    from adaptcli.data.loader import eval_loader
    from adaptcli.engine.device import pins_memory

    if split not in manifest.splits:
        raise AdaptError(f"split '{split}' is not in {data_dir} (has {', '.join(manifest.splits)}); pass --split NAME")
    loader = eval_loader(data_dir, split, spec, config.eval.batch_size, views=views,
                         rank=accelerator.process_index, world_size=accelerator.num_processes,
                         workers=config.data.workers, skip_damaged=skip_damaged,
                         pin_memory=pins_memory(accelerator.device))
    was_training = model.training
    multi = bool(getattr(manifest, "multi_label", False))
    damaged: dict[str, str] = {}
    scores, labels, keys = predict(model, accelerator, loader, show=show, multi_label=multi, damaged=damaged)
    model.train(was_training)
    rows = [(k, s, l if multi else int(l)) for k, s, l in zip(keys, scores, labels)]
    rows = gather_object(rows) if accelerator.num_processes > 1 else rows
    if accelerator.num_processes > 1:
        damaged = {k: v for part in gather_object([damaged]) for k, v in part.items()}
    seen: dict[str, tuple[torch.Tensor, int]] = {key: (score, label) for key, score, label in rows}
    if len(seen) != len(rows):  # the loader promises every sample exactly once
        raise RuntimeError(f"evaluation saw {len(rows) - len(seen)} samples more than once")
    if not seen:
        raise AdaptError(f"split '{split}' of {data_dir} has no samples")
    ordered = [seen[k] for k in sorted(seen)]
    all_scores = torch.stack([score for score, _ in ordered])
    if multi:
        all_labels = torch.stack([label for _, label in ordered])
        metrics = multilabel_metrics(all_scores, all_labels, manifest.classes)
    else:
        all_labels = torch.tensor([label for _, label in ordered])
        if (all_labels < 0).any():
            raise AdaptError(f"split '{split}' has no labels (the SSv2 test split is unlabelled); pass --split validation")
        metrics = classification_metrics(all_scores, all_labels, manifest.classes)
    if scores_file is not None and accelerator.is_main_process:
        from adaptcli.io import save_tensors

        save_tensors(scores_file, {"scores": all_scores, "targets": all_labels},
                     {"keys": sorted(seen), "classes": manifest.classes, "split": split})
        metrics.update(scores_file=str(scores_file))
    metrics.update(split=split, views=f"{views[0]}x{views[1]}")
    if skip_damaged:
        expected = manifest.split(split).samples
        metrics.update(missing_samples=max(0, expected - len(seen)),
                       damaged_shards={Path(url).name: reason for url, reason in sorted(damaged.items())})
    return metrics


def evaluate_run(run_path: Path, *, data: Path | None = None, split: str = "test", views: str | None = None,
                 skip_damaged: bool = False, scores_file: Path | None = None) -> dict[str, Any]:
    """Evaluate a finished run; writes ``eval.json`` in the run folder and returns the metrics."""
    from adaptcli.engine.distributed import partial_state
    from adaptcli.io import write_json
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.load import load_run_model

    run = RunDir(Path(run_path))
    if scores_file is not None:
        reads = run.dependencies(run.config())
        if data is not None:
            reads.add(Path(data).resolve())
        check_scores_file(scores_file, reads)
    model, config, info = load_run_model(run)
    metrics = evaluate_loaded(model, config, info["num_classes"], Path(data or info["data"]), split, views,
                              skip_damaged=skip_damaged, scores_file=scores_file)
    metrics.update(run=str(run.path))
    if partial_state().is_main_process:
        write_json(run.eval_file, metrics)
    return metrics


def check_scores_file(scores_file: Path, reads: set[Path]) -> None:
    """``--scores`` never writes over (or into) what the evaluation reads: the run's files, data, weights."""
    target = Path(scores_file).resolve()
    if target in reads or any(folder in target.parents for folder in reads if folder.is_dir()):
        raise AdaptError(f"--scores {scores_file} would replace a file the evaluation reads (the run's own files, "
                         "its data or weights); choose another name")
    if target.is_dir():
        raise AdaptError(f"--scores {scores_file} is a folder; name the file to write, such as "
                         f"{Path(scores_file) / 'scores.safetensors'}")


def evaluate_loaded(model: Any, config: RunConfig, num_classes: int, data_dir: Path, split: str = "test",
                    views: str | None = None, scores_file: Path | None = None, *,
                    skip_damaged: bool = False) -> dict[str, Any]:
    """Metrics of an adapted (or deployed) model built for ``config`` on ``split`` of ``data_dir``."""
    from adaptcli.data.loader import StreamSpec
    from adaptcli.data.manifest import read_manifest
    from adaptcli.engine.device import build_accelerator
    from adaptcli.runs.build import check_modality, normalisation

    manifest = read_manifest(data_dir)
    check_modality(model, manifest.modality, config.model.name)
    if manifest.num_classes != num_classes:
        raise AdaptError(
            f"{data_dir} has {manifest.num_classes} classes but the run was trained on {num_classes}; "
            "pass shards of the same dataset"
        )
    accelerator = build_accelerator(config)
    model = model.to(accelerator.device)
    view_pair = parse_views(views or config.eval.views)
    if manifest.modality == "image":
        view_pair = (1, 1)
    norm = normalisation(model)
    spec = StreamSpec.from_config(config.data, config.model.img_size, config.model.num_frames, norm.mean, norm.std)
    metrics = evaluate_model(model, accelerator, data_dir, split, spec, config, manifest, views=view_pair,
                             show=accelerator.is_main_process, scores_file=scores_file, skip_damaged=skip_damaged)
    metrics.update(data=str(data_dir), method=config.method, backbone=config.model.name)
    return metrics


def evaluate_export(model: nn.Module, meta: dict[str, Any], data_dir: Path, *, split: str = "test",
                    views: str | None = None, skip_damaged: bool = False, scores_file: Path | None = None) -> dict[str, Any]:
    """Metrics of a model loaded from an export file whose header (``read_header``) is ``meta``."""
    from adaptcli.config import header_config

    return evaluate_loaded(model, header_config(meta), int(meta["num_classes"]), Path(data_dir), split, views,
                           scores_file=scores_file, skip_damaged=skip_damaged)
