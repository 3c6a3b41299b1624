"""Classification metrics from gathered scores.

Single-label: top-1, top-5, per-class and mean-class accuracy. Multi-label: mean average precision
over the classes that have a positive in the split (the others are excluded and counted).
"""

from __future__ import annotations

from typing import Any

import torch


def average_views(logits: torch.Tensor, views: int, multi_label: bool = False) -> torch.Tensor:
    """Softmax (multi-label: sigmoid) of ``(B*V) x C`` logits averaged over the V views: ``B x C``."""
    probs = logits.float().sigmoid() if multi_label else logits.float().softmax(dim=-1)
    return probs.view(-1, views, probs.shape[-1]).mean(dim=1)


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """AP of one class: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, high to low.

    The same step-wise definition as scikit-learn's ``average_precision_score`` (tied scores form one
    threshold). ``targets`` is 0/1 with at least one positive.
    """
    order = torch.argsort(scores.double(), descending=True, stable=True)
    ranked, hits = scores.double()[order], targets.double()[order]
    true_pos = hits.cumsum(0)
    # Keep the last position of each run of equal scores: one point per threshold.
    last = torch.ones_like(ranked, dtype=torch.bool)
    last[:-1] = ranked[1:] != ranked[:-1]
    true_pos = true_pos[last]
    counted = torch.nonzero(last).squeeze(1).double() + 1
    precision = true_pos / counted
    recall = true_pos / hits.sum()
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * precision).sum())


def multilabel_metrics(scores: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """``mAP`` (in %) over classes with a positive; ``per_class_ap`` is None for the excluded ones.

    ``scores``: N x C, ``targets``: N x C multi-hot.
    """
    per_class: dict[str, float | None] = {}
    aps = []
    for index in range(scores.shape[1]):
        name = class_names[index] if index < len(class_names) else str(index)
        if targets[:, index].sum() > 0:
            per_class[name] = 100.0 * average_precision(scores[:, index], targets[:, index])
            aps.append(per_class[name])
        else:
            per_class[name] = None
    excluded = [name for name, ap in per_class.items() if ap is None]
    return {
        "task": "multi-label",
        "samples": int(scores.shape[0]),
        "mAP": sum(aps) / len(aps) if aps else 0.0,
        "classes_evaluated": len(aps),
        "classes_without_positives": len(excluded),
        "excluded_classes": excluded,
        "per_class_ap": per_class,
    }


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
        "task": "single-label",
        "samples": samples,
        "top1": 100.0 * correct1.float().mean().item() if samples else 0.0,
        "top5": 100.0 * correct5.float().mean().item() if samples else 0.0,
        "mean_class_acc": sum(accuracies) / len(accuracies) if accuracies else 0.0,
        "per_class": per_class,
    }

