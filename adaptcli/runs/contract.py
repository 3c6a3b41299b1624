"""What a run's consumers (``predict``, ``eval``, ``export``) check before any work.

* The backbone file the run was trained from (``run.json``'s ``backbone_file``: the run's own
  ``backbone.safetensors``, or the ``--checkpoint`` file finetune was given) is there and unchanged;
  ``--backbone FILE`` points to it where it moved. A missing or changed file is one line naming it and
  that flag, never a freshly drawn backbone.
* Data to score a run (or an export) on names the classes, task kind and modality it was trained on
  (:func:`check_data_contract`); only the class names may be waived, explicitly (``--classes-by-index``).
* An evaluation on data that is not the run's own (:func:`is_run_data`) never lands in the run's ``eval.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adaptcli.config import RunConfig
from adaptcli.data.manifest import MANIFEST_NAME, Manifest
from adaptcli.errors import AdaptError
from adaptcli.runs.folder import RunDir
from adaptcli.files import file_sha256
from adaptcli.runs.info import RunInfo
from adaptcli.runs.results import EvalResult

#: The flag of ``predict``, ``eval`` and ``export`` that points a run to its moved backbone file.
BACKBONE_FLAG = "--backbone"
#: The flag of ``eval`` that scores data whose class names differ from the run's, class i as class i.
BY_INDEX_FLAG = "--classes-by-index"


@dataclass(frozen=True)
class RunBackbone:
    """The checked backbone file a run's model is rebuilt from.

    ``kept``: the run's own ``backbone.safetensors`` layout (the frozen weights under the adapted model's
    names), else a checkpoint in any layout ``finetune --checkpoint`` reads.
    """

    path: Path
    kept: bool


def recorded_backbone(run: RunDir, config: RunConfig, info: RunInfo) -> tuple[Path, bool] | None:
    """(the backbone file the run reads, whether it is the run's kept ``backbone.safetensors``); None when
    the run reads none (its weights hold the whole model). Runs written before ``run.json`` named the file
    get it from their configuration."""
    from adaptcli.methods.registry import method_spec

    if info.backbone_file is not None:
        recorded = Path(info.backbone_file)
        if not recorded.is_absolute():  # the run's own file, named relative to the folder
            return run.path / recorded, recorded.name == RunDir.backbone_file.name
        return recorded, False
    if config.model.checkpoint:
        return Path(config.model.checkpoint), False
    if run.backbone_file.exists() or not method_spec(config.method).trains_backbone:
        return run.backbone_file, True
    return None


def check_run_backbone(run: RunDir, config: RunConfig, info: RunInfo, override: Path | None = None) -> RunBackbone | None:
    """The run's backbone file (``override``: where it moved), present and with the SHA-256 ``run.json``
    records; a one-line error naming the file and ``--backbone`` otherwise.

    The whole file is hashed on every load, not compared by size and modification time: two backbones of
    one architecture have the same size, and copies keep modification times (``cp -p``, ``rsync -t``,
    ``tar``), so size and time cannot tell the right file from another. Loading reads every byte anyway;
    hashing them (about 2 GB/s, ~0.2 s for a ViT-B) costs one more pass over bytes then in the page cache.
    """
    found = recorded_backbone(run, config, info)
    if found is None:
        if override is not None:
            raise AdaptError(f"{BACKBONE_FLAG} {override}: the run {run.path} trained its whole backbone, so its "
                             "weights hold it and it reads no backbone file; drop --backbone")
        return None
    recorded, kept = found
    if override is not None:
        if not override.is_file():
            raise AdaptError(f"{BACKBONE_FLAG} {override}: no such file; pass the backbone file the run "
                             f"was trained from ({recorded.name})")
        _check_hash(override, info, f"{BACKBONE_FLAG} {override} is not the backbone the run {run.path} was "
                                    f"trained from ({recorded.name})", "pass that file")
        return RunBackbone(override, kept)
    if not recorded.is_file():
        raise AdaptError(f"the backbone file {recorded} of the run {run.path} is missing (moved, or a copy without "
                         f"its large files); pass {BACKBONE_FLAG} FILE to point to it")
    _check_hash(recorded, info, f"the backbone file {recorded} of the run {run.path} changed since the run was "
                                "trained", f"restore it, or pass {BACKBONE_FLAG} FILE with the original")
    return RunBackbone(recorded, kept)


def _check_hash(path: Path, info: RunInfo, problem: str, fix: str) -> None:
    """Refuse ``path`` when ``run.json`` records another SHA-256 (runs written before it was recorded pass)."""
    if info.backbone_sha256 is not None and file_sha256(path) != info.backbone_sha256:
        raise AdaptError(f"{problem}: its SHA-256 differs from the one run.json records; {fix}")


def check_data_contract(manifest: Manifest, data_dir: Path, source: str, *, classes: list[str], num_classes: int,
                        task: str | None, modality: str | None, classes_by_index: bool = False) -> None:
    """Refuse data that is not what ``source`` (a run or an export) was trained on: another modality, task
    kind or number of classes always; other class names unless ``classes_by_index`` (the user says class i
    of the data is class i of the model). ``task``, ``modality`` None and empty ``classes``: not recorded
    (older files), not compared."""
    if modality is not None and modality != manifest.modality:
        raise AdaptError(f"{data_dir} holds {manifest.modality}s but {source} takes {modality}s; "
                         "pass shards of the dataset it was trained on")
    if manifest.num_classes != num_classes:
        raise AdaptError(f"{data_dir} has {manifest.num_classes} classes but {source} was trained on {num_classes}; "
                         "pass shards of the same dataset")
    if task is not None and task != manifest.task:
        raise AdaptError(f"{data_dir} is {manifest.task} data but {source} was trained on {task} data; "
                         "pass shards of the same dataset")
    if classes and not classes_by_index and list(classes) != list(manifest.classes):
        index = next(i for i, (a, b) in enumerate(zip(classes, manifest.classes)) if a != b)
        raise AdaptError(f"{data_dir} names its classes differently from {source} (class {index}: "
                         f"{manifest.classes[index]!r} there, {classes[index]!r} in the model); pass shards of the "
                         f"dataset it was trained on, or {BY_INDEX_FLAG} to score class i of the data as class i")


def is_run_data(info: RunInfo, data_dir: Path) -> bool:
    """Whether ``data_dir`` holds the data the run was trained on: its ``dataset.json`` has the recorded
    SHA-256 (a copy or a moved folder counts; a re-prepared one that differs does not). Runs written
    before the fingerprint was recorded compare the folder's path."""
    if info.data_fingerprint is not None:
        manifest = Path(data_dir) / MANIFEST_NAME
        return manifest.is_file() and file_sha256(manifest) == info.data_fingerprint
    return info.data is not None and Path(data_dir).resolve() == Path(info.data).resolve()


def scored_on_run_data(evaluated: EvalResult, info: RunInfo) -> bool:
    """Whether an ``eval.json`` holds a score on the run's own data (its data fingerprint; an ``eval.json``
    written before the fingerprint was recorded: the same data folder)."""
    if evaluated.data_fingerprint is not None and info.data_fingerprint is not None:
        return evaluated.data_fingerprint == info.data_fingerprint
    return evaluated.data is not None and info.data is not None and Path(evaluated.data) == Path(info.data)


__all__ = ["BACKBONE_FLAG", "BY_INDEX_FLAG", "RunBackbone", "check_data_contract", "check_run_backbone",
           "is_run_data", "recorded_backbone", "scored_on_run_data"]
