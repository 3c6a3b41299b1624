"""Every check ``finetune`` makes before it trains, made before anything is written.

``finetune`` calls :func:`check_before_training` before it creates ``--out``, and ``finetune --dry-run``
calls the same function, so a dry run that passes means the run will start: the data (classes, the
splits the run reads, their sample counts against the shards), the task settings, the trackers, the
model against the data (built on the meta device: its modality and input size), the checkpoint file,
and ``--out``.
"""

from __future__ import annotations

from pathlib import Path

from adaptcli.config import RunConfig
from adaptcli.data.manifest import MANIFEST_NAME
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.errors import AdaptError


def check_before_training(config: RunConfig, data_dir: Path, out: Path, *, resume: bool = False,
                          overwrite: bool = False, main: bool = True) -> ShardFolder:
    """The shard folder the run trains on, once every refusal the run can make before training has been
    checked (one-line :class:`AdaptError`); nothing is written. ``main``: this process prepares ``--out``
    (the other processes of a distributed run leave ``--out`` to it: it may already hold the run)."""
    from adaptcli.engine.tracking import tracker_names
    from adaptcli.runs.folder import RunDir
    from adaptcli.runs.session import check_training_data

    shards = ShardFolder.read(data_dir)
    manifest = shards.manifest
    if manifest.num_classes < 2:
        raise AdaptError(f"{data_dir} has {manifest.num_classes} class(es); classification needs at least two "
                         "(check the class folders given to adaptcli prepare)")
    tracker_names(config.train.log_with)
    check_training_data(config, shards)
    for split in used_splits(config, shards):
        check_split_samples(shards, split)
    check_model_fits(config, shards)
    check_probe_grid(config)
    check_checkpoint_file(config)
    check_feature_cache_dir(config)
    if main:
        RunDir(Path(out)).check_out(config, resume=resume, overwrite=overwrite, data=Path(data_dir))
    return shards


def used_splits(config: RunConfig, shards: ShardFolder) -> list[str]:
    """The splits training reads: the training split, and the one ``data.val_split`` validates on, if any
    (:func:`~adaptcli.data.splits.validation_split`)."""
    from adaptcli.data.splits import validation_split

    val = validation_split(config.data.val_split, shards.manifest.splits, str(shards.path))
    return [config.data.train_split] + ([val] if val and val != config.data.train_split else [])


def check_split_samples(shards: ShardFolder, split: str) -> None:
    """A split the run reads holds samples, its shard files are there (a few missing: the stream skips
    them), and they hold as many samples as the manifest says."""
    from adaptcli.data.stream.counts import check_split_count

    manifest = shards.manifest
    if shards.split(split).samples == 0:
        skipped = sum(1 for s in manifest.skipped if s.get("split") == split)
        why = (f"; prepare skipped all {skipped} sample(s) it was given (see \"skipped\" in "
               f"{shards.path / MANIFEST_NAME})" if skipped else "")
        raise AdaptError(f"split '{split}' of {shards.path} has 0 samples{why}; prepare the data again from the "
                         "dataset's root folder, or choose another split with --set data.train_split/val_split")
    shards.require_shards(shards.urls(split))
    check_split_count(shards, split)


def check_model_fits(config: RunConfig, shards: ShardFolder) -> None:
    """The backbone exists, takes ``model.img_size``/``num_frames`` and the data's modality, and the method
    applies to it (built on the meta device: shapes only, instant)."""
    import dataclasses

    from adaptcli.engine.loraplus import check_loraplus
    from adaptcli.methods.apply import apply_method, get_method
    from adaptcli.models.build import create_backbone, shape_only_backbone
    from adaptcli.models.frame_shift import check_offsets_fit
    from adaptcli.runs.build import check_modality

    try:
        model = shape_only_backbone(config.model, shards.manifest.num_classes)
        apply_method(model, config.method, config.method_options, head_norm=config.head.norm,
                     num_frames=config.model.num_frames)  # a method refusing this backbone
    except (RuntimeError, NotImplementedError):  # a model or method that reads tensor values: build it for real
        model = create_backbone(dataclasses.replace(config.model, pretrained=False), shards.manifest.num_classes)
        apply_method(model, config.method, config.method_options, head_norm=config.head.norm,
                     num_frames=config.model.num_frames)
    check_modality(model, shards.manifest.modality, config.model.name)  # adapted: a method may make it a video model
    check_offsets_fit(model, config.model.num_frames)
    check_loraplus(model, config.train.loraplus_ratio, config.method)
    if config.train.pace_sigma:  # the sites PACE's noise goes on, as the run finds them (DoRA's qkv=split has none)
        get_method(config.method).pace_sites(model)


def check_probe_grid(config: RunConfig) -> None:
    """A probe grid (``method.lrs`` x ``method.weight_decays``) trains several probes in one run: settings that
    act on one trained model (its weight average, its compiled forward) are refused."""
    from adaptcli.methods.registry import probe_settings

    train = config.train
    count = len(probe_settings(config.method, config.method_options, train.lr, train.weight_decay))
    if count == 1:
        return
    if train.ema is not None:
        raise AdaptError(f"train.ema averages one model, but method.lrs x method.weight_decays train {count} probes; "
                         "set --set train.ema=null, or give one lr and one weight decay")
    if train.compile:
        raise AdaptError(f"train.compile compiles one model's forward, but method.lrs x method.weight_decays train "
                         f"{count} probes on one pass; set --set train.compile=false")


def check_checkpoint_file(config: RunConfig) -> None:
    """``model.checkpoint`` is a weights file of a kind adaptcli reads (its first bytes; the weights are
    checked against the model when the run loads them)."""
    import zipfile

    from adaptcli.models.checkpoints.files import container_kind

    checkpoint = config.model.checkpoint
    if not checkpoint:
        return
    if not Path(checkpoint).exists():
        raise AdaptError(f"checkpoint not found: {checkpoint}; pass the backbone's weights file with --checkpoint")
    try:
        container_kind(checkpoint)
    except zipfile.BadZipFile as exc:
        raise AdaptError(f"checkpoint {checkpoint} is unreadable, probably truncated ({exc}); "
                         "download or copy it again") from None


def check_feature_cache_dir(config: RunConfig) -> None:
    """``train.feature_cache_dir``, when set, is an existing folder (adaptcli creates only its own folder in it)."""
    chosen = config.train.feature_cache_dir
    if chosen and not Path(chosen).expanduser().is_dir():
        why = "is not a folder" if Path(chosen).expanduser().exists() else "does not exist"
        raise AdaptError(f"train.feature_cache_dir {chosen} {why}; create the folder or leave the option unset "
                         "(the disk cache then goes into the run folder)")


__all__ = ["check_before_training", "check_checkpoint_file", "check_feature_cache_dir", "check_model_fits",
           "check_probe_grid",
           "check_split_samples", "used_splits"]
