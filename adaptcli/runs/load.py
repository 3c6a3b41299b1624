"""Rebuild a finished (or interrupted) run's adapted model from its folder."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.io import read_safetensors
from adaptcli.methods.base import AdaptInfo
from adaptcli.output import Output
from adaptcli.runs.build import AdaptedModel, build_adapted_model
from adaptcli.runs.contract import RunBackbone, check_run_backbone
from adaptcli.runs.folder import RunDir
from adaptcli.runs.info import RunInfo
from adaptcli.runs.tensors import adapted_keys, load_into


@dataclass
class LoadedRun:
    """A run's adapted model with its trained weights, its configuration and its ``run.json``."""

    adapted: AdaptedModel
    config: RunConfig
    info: RunInfo
    backbone: RunBackbone | None = None  # the checked backbone file it was built on (None: the weights hold it)

    @property
    def model(self) -> nn.Module:
        return self.adapted.model

    @property
    def adapt(self) -> AdaptInfo:
        return self.adapted.info


def load_run_model(run: RunDir, *, weights: Path | None = None, output: Output | None = None,
                   backbone: Path | None = None) -> LoadedRun:
    """Rebuild a run's adapted model: backbone (checkpoint or saved frozen weights) + trained tensors.

    The backbone file is checked first (:func:`~adaptcli.runs.contract.check_run_backbone`: present, the
    hash ``run.json`` records; ``backbone``: where it moved). Every weight comes from a file, so no seed is
    needed. An unfinished run is noted on ``output.warn``.
    """
    config, info = run.config(), run.info()
    source = check_run_backbone(run, config, info, Path(backbone) if backbone is not None else None)
    built = config
    if source is not None and not source.kept:  # the --checkpoint file finetune read, wherever it is now
        built = replace(config, model=replace(config.model, checkpoint=str(source.path)))
    adapted = build_adapted_model(built, info.num_classes, output=Output.silent())
    model = adapted.model
    if source is not None and source.kept:
        frozen, _ = read_safetensors(source.path)
        load_into(model, adapted_keys(model, frozen), f"{source.path}")
    selected = weights or run.selected_weights()
    note = run.unfinished_note(selected)
    if note:
        (output or Output()).warn(note)
    trained, _ = read_safetensors(selected)
    load_into(model, trained, "the run's weights")
    model.eval()
    return LoadedRun(adapted, config, info, source)
