"""Evaluate an adapter-only file on a backbone file, without the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adaptcli.deploy.header import header_config


def evaluate_adapter(adapter: Path, checkpoint: Path, data: Path, *, split: str = "test",
                     views: str | None = None) -> dict[str, Any]:
    """Metrics of ``adapter`` on ``checkpoint`` over ``split`` of ``data`` (the run's eval settings)."""
    from adaptcli.deploy.load import load
    from adaptcli.engine.finetune import evaluate_loaded

    model = load(adapter, backbone=checkpoint)
    meta = model.adaptcli_export
    metrics = evaluate_loaded(model, header_config(meta), int(meta["num_classes"]), Path(data), split, views)
    metrics.update(adapter=str(adapter), checkpoint=str(checkpoint))
    return metrics
