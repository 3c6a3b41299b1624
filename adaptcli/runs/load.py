"""Rebuild a finished (or interrupted) run's adapted model from its folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from torch import nn

from adaptcli.config import RunConfig
from adaptcli.io import read_safetensors
from adaptcli.runs.build import build_adapted_model
from adaptcli.runs.folder import RunDir
from adaptcli.runs.tensors import adapted_keys, load_into


def load_run_model(run: RunDir, *, weights: Path | None = None,
                   quiet: bool = True) -> tuple[nn.Module, RunConfig, dict[str, Any]]:
    """Rebuild a run's adapted model: backbone (checkpoint or saved frozen weights) + trained tensors."""

    config, info = run.config(), run.info()
    model = build_adapted_model(config, info["num_classes"], quiet=quiet)
    if run.backbone_file.exists():
        frozen, _ = read_safetensors(run.backbone_file)
        load_into(model, adapted_keys(model, frozen), f"{run.backbone_file}")
    selected = weights or run.selected_weights()
    note = run.unfinished_note(selected)
    if note:
        print(note, file=sys.stderr)
    trained, _ = read_safetensors(selected)
    load_into(model, trained, "the run's weights")
    return model.eval(), config, info
