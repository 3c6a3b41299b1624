"""The :class:`Session`: one resolved configuration, one prepared data folder and one model, checked
against each other once, with what training and evaluation need from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from adaptcli.config import RunConfig
from adaptcli.data.manifest import Manifest
from adaptcli.data.splits import TEST, configured_split, validation_split
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.errors import AdaptError
from adaptcli.methods.base import AdaptInfo
from adaptcli.output import Output
from adaptcli.runs.build import build_adapted_model, check_modality, normalisation
from adaptcli.runs.results import headline_metric


@dataclass
class Session:
    """A model on a shard folder (with its manifest, read once), the stream settings with the
    backbone's normalisation, the task's headline metric and where messages go.

    ``adapt`` is what the method did to ``model``; None for a deployed model (a merged export).
    """

    config: RunConfig
    shards: ShardFolder
    model: nn.Module
    spec: StreamSpec
    adapt: AdaptInfo | None = None
    output: Output = field(default_factory=Output)

    @property
    def manifest(self) -> Manifest:
        return self.shards.manifest

    @property
    def multi_label(self) -> bool:
        return self.manifest.multi_label

    @property
    def metric(self) -> str:
        """``mAP`` for multi-label data, else ``top1`` (:func:`~adaptcli.runs.results.headline_metric`)."""
        return headline_metric(self.manifest.multi_label)

    @property
    def val_split(self) -> str | None:
        """The data's split for the recipe's ``data.val_split`` (:func:`~adaptcli.data.splits.validation_split`:
        ``val`` data validates under the default ``validation``); None: training validates nothing."""
        return validation_split(self.config.data.val_split, self.manifest.splits, str(self.shards.path))

    def steps_per_epoch(self, world_size: int) -> int:
        """Optimiser-independent steps (batches per process) of one training epoch."""
        from adaptcli.data.stream.train import steps_per_epoch

        train = self.config.train
        samples = self.manifest.splits[self.config.data.train_split].samples
        return steps_per_epoch(samples, train.batch_size, world_size, train.max_steps_per_epoch)

    @classmethod
    def around(cls, config: RunConfig, shards: ShardFolder, model: nn.Module, adapt: AdaptInfo | None = None,
               output: Output | None = None) -> Session:
        """The preamble every command shares: modality check, normalisation, stream settings."""
        check_modality(model, shards.manifest.modality, config.model.name)
        norm = normalisation(model)
        spec = StreamSpec.from_config(config.data, config.model.img_size, config.model.num_frames, norm.mean, norm.std)
        return cls(config, shards, model, spec, adapt, output or Output())

    @classmethod
    def for_training(cls, config: RunConfig, shards: ShardFolder, output: Output | None = None) -> Session:
        """Check the data against the recipe, then build the adapted model from ``train.seed``.

        Seeds Python, numpy and torch with ``train.seed`` first: the weights no checkpoint holds (the
        method's, the head's) are drawn from it.
        """
        from accelerate.utils import set_seed

        check_training_data(config, shards)
        set_seed(config.train.seed)
        adapted = build_adapted_model(config, shards.manifest.num_classes, output=output)
        if config.train.pace_sigma:
            from adaptcli.methods.pace import install_pace_noise

            install_pace_noise(adapted.model, config.method, config.train.pace_sigma)
        return cls.around(config, shards, adapted.model, adapted.info, output)

    @classmethod
    def for_evaluation(cls, config: RunConfig, data_dir: Path, model: nn.Module, num_classes: int,
                       adapt: AdaptInfo | None = None, output: Output | None = None) -> Session:
        """A trained model (``num_classes`` outputs) on the shards in ``data_dir``."""
        shards = ShardFolder.read(data_dir)
        session = cls.around(config, shards, model, adapt, output)
        manifest = shards.manifest
        if manifest.num_classes != num_classes:
            raise AdaptError(
                f"{data_dir} has {manifest.num_classes} classes but the run was trained on {num_classes}; "
                "pass shards of the same dataset"
            )
        return session


def check_training_data(config: RunConfig, shards: ShardFolder) -> None:
    """The splits ``data.*_split`` name exist (by the split-name table: ``training`` is the data's ``train``,
    and ``data.train_split`` / ``data.test_split`` then become the data's own names in ``config``; the default
    test split may be absent), and no setting contradicts the task (label smoothing on multi-label)."""
    data_dir, manifest = str(shards.path), shards.manifest
    config.data.train_split = configured_split("train_split", config.data.train_split, manifest.splits, data_dir)
    test = configured_split("test_split", config.data.test_split, manifest.splits, data_dir, default=TEST)
    config.data.test_split = test or config.data.test_split
    validation_split(config.data.val_split, manifest.splits, data_dir)  # a named split the data lacks
    smoothing = config.train.label_smoothing
    if manifest.multi_label and (config.train.mixup or config.train.cutmix):
        raise AdaptError("train.mixup/cutmix mix single-label targets; multi-label data trains without them: "
                         "set --set train.mixup=0 --set train.cutmix=0")
    if manifest.multi_label and smoothing:
        raise AdaptError(
            f"train.label_smoothing={smoothing} does not apply to multi-label data "
            "(binary cross-entropy per class); set --set train.label_smoothing=0"
        )


__all__ = ["Session", "check_training_data"]
