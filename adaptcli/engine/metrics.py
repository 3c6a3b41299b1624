"""Classification metrics from gathered scores: top-1, top-5, per-class and mean-class accuracy."""

from __future__ import annotations

from typing import Any

import torch


def average_views(logits: torch.Tensor, views: int) -> torch.Tensor:
    """Softmax of ``(B*V) x C`` logits averaged over the V views of each sample: ``B x C``."""
    probs = logits.float().softmax(dim=-1)
    return probs.view(-1, views, probs.shape[-1]).mean(dim=1)


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """Metrics over every sample once. ``scores``: N x C, ``labels``: N."""
    num_classes = scores.shape[1]
    k = min(5, num_classes)
    topk = scores.topk(k, dim=1).indices
    correct1 = topk[:, 0] == labels
    correct5 = (topk == labels[:, None]).any(dim=1)
    per_class: dict[str, float | None] = {}
    accuracies = []
    for index in range(num_classes):
        mask = labels == index
        name = class_names[index] if index < len(class_names) else str(index)
        if mask.any():
            acc = 100.0 * correct1[mask].float().mean().item()
            per_class[name] = acc
            accuracies.append(acc)
        else:
            per_class[name] = None
    samples = int(labels.numel())
    return {
        "samples": samples,
        "top1": 100.0 * correct1.float().mean().item() if samples else 0.0,
        "top5": 100.0 * correct5.float().mean().item() if samples else 0.0,
        "mean_class_acc": sum(accuracies) / len(accuracies) if accuracies else 0.0,
        "per_class": per_class,
    }
