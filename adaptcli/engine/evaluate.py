"""Evaluation: every sample once across processes, multi-view averaging for video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.engine.metrics import average_views, classification_metrics
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
def predict(model: nn.Module, accelerator: Any, loader, show: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Softmax scores (averaged over views), labels and keys of this process's share."""
    from tqdm.auto import tqdm

    scores, labels, keys = [], [], []
    model.eval()
    for batch in tqdm(loader, disable=not show, desc="evaluating", unit="batch", dynamic_ncols=True):
        inputs = batch["inputs"].to(accelerator.device)
        views = 1
        if inputs.ndim == 6:  # B x V x C x T x H x W
            views = inputs.shape[1]
            inputs = inputs.flatten(0, 1)
        with accelerator.autocast():
            logits = model(inputs)
        scores.append(average_views(logits, views).cpu())
        labels.append(batch["labels"].cpu())
        keys.extend(batch["keys"])
    if not scores:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long), []
    return torch.cat(scores), torch.cat(labels), keys


def evaluate_model(model: nn.Module, accelerator: Any, data_dir: Path, split: str, spec: Any, config: RunConfig,
                   manifest: Any, views: tuple[int, int], show: bool = False) -> dict[str, Any]:
    """Metrics of ``model`` on ``split``, identical on every process."""
    from accelerate.utils import gather_object

    from adaptcli.data.loader import eval_loader

    if split not in manifest.splits:
        raise AdaptError(f"split '{split}' is not in {data_dir} (has {', '.join(manifest.splits)}); pass --split NAME")
    loader = eval_loader(data_dir, split, spec, config.eval.batch_size, views=views,
                         rank=accelerator.process_index, world_size=accelerator.num_processes,
                         workers=config.data.workers)
    was_training = model.training
    scores, labels, keys = predict(model, accelerator, loader, show=show)
    model.train(was_training)
    rows = [(k, s, int(l)) for k, s, l in zip(keys, scores, labels)]
    rows = gather_object(rows) if accelerator.num_processes > 1 else rows
    seen: dict[str, tuple[torch.Tensor, int]] = {key: (score, label) for key, score, label in rows}
    if len(seen) != len(rows):  # the loader promises every sample exactly once
        raise RuntimeError(f"evaluation saw {len(rows) - len(seen)} samples more than once")
    if not seen:
        raise AdaptError(f"split '{split}' of {data_dir} has no samples")
    ordered = [seen[k] for k in sorted(seen)]
    all_labels = torch.tensor([label for _, label in ordered])
    if (all_labels < 0).any():
        raise AdaptError(f"split '{split}' has no labels (the SSv2 test split is unlabelled); pass --split validation")
    all_scores = torch.stack([score for score, _ in ordered])
    metrics = classification_metrics(all_scores, all_labels, manifest.classes)
    metrics.update(split=split, views=f"{views[0]}x{views[1]}")
    return metrics
