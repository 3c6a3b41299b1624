"""Rebuild a finished (or interrupted) run's adapted model from its folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.io import read_safetensors
from adaptcli.methods.base import AdaptInfo
from adaptcli.output import Output
from adaptcli.runs.build import AdaptedModel, build_adapted_model
from adaptcli.runs.folder import RunDir
from adaptcli.runs.info import RunInfo
from adaptcli.runs.tensors import adapted_keys, load_into


@dataclass
class LoadedRun:
    """A run's adapted model with its trained weights, its configuration and its ``run.json``."""

    adapted: AdaptedModel
    config: RunConfig
    info: RunInfo

    @property
    def model(self) -> nn.Module:
        return self.adapted.model

    @property
    def adapt(self) -> AdaptInfo:
        return self.adapted.info


def load_run_model(run: RunDir, *, weights: Path | None = None, output: Output | None = None) -> LoadedRun:
    """Rebuild a run's adapted model: backbone (checkpoint or saved frozen weights) + trained tensors.

    Every weight comes from a file, so no seed is needed. An unfinished run is noted on ``output.warn``.
    """
    config, info = run.config(), run.info()
    adapted = build_adapted_model(config, info.num_classes, output=Output.silent())
    model = adapted.model
    if run.backbone_file.exists():
        frozen, _ = read_safetensors(run.backbone_file)
        load_into(model, adapted_keys(model, frozen), f"{run.backbone_file}")
    selected = weights or run.selected_weights()
    note = run.unfinished_note(selected)
    if note:
        (output or Output()).warn(note)
    trained, _ = read_safetensors(selected)
    load_into(model, trained, "the run's weights")
    model.eval()
    return LoadedRun(adapted, config, info)
