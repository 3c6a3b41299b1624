"""``export_run``: a run folder to deployable weights.

Two choices: the *mode* says what is exported (``merge``: the method folded into the backbone's
own architecture; ``full``: the whole adapted model; ``adapter-only``: the task's own tensors), the
*format* how it is laid out on disk (the registry in :mod:`adaptcli.deploy.formats`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adaptcli.config import RunConfig
from adaptcli.deploy.check import TOLERANCE, random_batch
from adaptcli.deploy.formats import ExportFormat, export_format
from adaptcli.deploy.header import export_metadata
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError, NotMergeableError
from adaptcli.methods.base import AdaptInfo
from adaptcli.methods.registry import merge_refusal
from adaptcli.ownership import claim_folder
from adaptcli.runs.folder import RunDir
from adaptcli.runs.info import RunInfo


@dataclass
class Export:
    """What a format writes: tensors + header, and what its self-check compares against."""

    mode: ExportMode
    state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    model: nn.Module  # the run's adapted model (the reference of every check)
    config: RunConfig
    inputs: torch.Tensor  # a seeded random batch in the run's input shape
    backbone_file: Path | None = None  # adapter-only: the backbone the check attaches to
    checkable: bool = True
    run: Path | None = None  # the run folder (a model card reads its summary.json and eval.json)


@dataclass(frozen=True)
class ExportResult:
    """What ``export_run`` wrote and how it checked; :meth:`to_dict` keeps the keys of earlier versions."""

    path: str
    bytes: int
    mode: ExportMode
    format: str  # the header's format field (``adaptcli.merged/1``, ...)
    file_format: str  # the registered format's name (``safetensors``, ``timm``, ``onnx``)
    method: str
    backbone: str
    tensors: int
    max_abs_diff: float | None  # None where no check ran (adapter-only without a backbone file)
    limit: float | None  # the check's limit (None: no check ran)
    check: str  # the self-check's name
    use: tuple[str, ...]  # lines telling the user how to load the output
    create_kwargs: dict[str, Any] | None  # merge: ``timm.create_model(backbone, **create_kwargs)``
    backbone_file: str | None  # adapter-only: a backbone file the adapter fits (None: none at hand)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (the mode as its name, ``use`` as a list)."""
        return {**asdict(self), "mode": self.mode.value, "use": list(self.use)}


def export_run(run_dir: Path | RunDir, out: Path, mode: ExportMode | str, fmt: str = "safetensors", *,
               overwrite: bool = False, backbone: Path | None = None) -> ExportResult:
    """Write ``out`` from the run in ``run_dir``; returns what was written and how it checked.

    ``backbone``: where the run's backbone file moved (checked against the hash ``run.json`` records)."""
    from adaptcli.runs.load import load_run_model

    mode = ExportMode.parse(mode)
    writer = export_format(fmt)
    if mode not in writer.modes:
        raise AdaptError(f"the {fmt} format holds {', '.join(writer.modes)} exports, not {mode}")
    out = Path(out)
    if writer.suffix and out.suffix != writer.suffix:
        raise AdaptError(f"--out {out}: the file name must end in {writer.suffix}")
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    config = run.config()
    refusal = merge_refusal(config.method, config.method_options) if mode is ExportMode.MERGE else None
    if refusal is not None:
        raise NotMergeableError(refusal)
    check_export_out(out, run, config, overwrite, writer)
    if backbone is not None and out.resolve() == Path(backbone).resolve():
        raise AdaptError(f"--out {out} is the --backbone file the run reads; choose another name")
    loaded = load_run_model(run, backbone=backbone)
    model, config, info = loaded.model, loaded.config, loaded.info
    out.parent.mkdir(parents=True, exist_ok=True)
    export = _build_export(mode, model, loaded.adapt, config, info, run,
                           loaded.backbone.path if loaded.backbone is not None else None)
    written = writer.write(export, out)
    return ExportResult(
        path=str(out), bytes=_size(out), mode=mode, format=mode.header_format, file_format=fmt,
        method=config.method, backbone=config.model.name, tensors=written.tensors,
        max_abs_diff=written.max_abs_diff,
        limit=None if written.max_abs_diff is None else written.limit or TOLERANCE, check=written.check or mode.check, use=tuple(written.use),
        create_kwargs=export.meta["create_kwargs"] if mode is ExportMode.MERGE else None,
        backbone_file=str(export.backbone_file) if export.backbone_file else None,
    )


def check_export_out(out: Path, run: RunDir, config: RunConfig, overwrite: bool,
                     writer: ExportFormat | None = None) -> None:
    """Refuse an existing ``out`` without ``overwrite``, and always a file the run depends on.

    A folder format (``writer.suffix`` None, such as timm) writes a folder: an existing one is replaced
    only with ``overwrite`` and only when that format wrote it (its marker, nothing else), never another folder.
    """
    target = out.resolve()
    depends = run.dependencies(config)
    if target in depends or any(folder in target.parents for folder in depends if folder.is_dir()) or \
            any(target in path.parents for path in depends):
        raise AdaptError(f"--out {out} would replace one of the run's own files or a file it reads "
                         f"(its data or backbone checkpoint); choose another name")
    if writer is not None and writer.suffix is None:  # written whole under a temporary name, renamed over ``out``
        claim_folder(out, writer.marker, writer.entries, overwrite, what=f"an adaptcli {writer.name} export",
                     whole=True)
        return
    if out.is_dir() and not out.is_symlink():
        raise AdaptError(f"--out {out} is a folder; name the file to write, such as {out / 'model.safetensors'}")
    if out.exists() and not overwrite:
        raise AdaptError(f"--out {out} already exists; pass --overwrite to replace it, or choose another name")


def _build_export(mode: ExportMode, model: nn.Module, adapt: AdaptInfo, config: RunConfig, info: RunInfo,
                  run: RunDir, backbone: Path | None = None) -> Export:
    from adaptcli.runs.build import is_video_model

    meta = export_metadata(mode, model, config, info)
    inputs = random_batch(config, is_video_model(model))
    if mode is ExportMode.MERGE:
        export = Export(mode, _merged_state(model, adapt, config, meta), meta, model, config, inputs)
    elif mode is ExportMode.FULL:
        export = Export(mode, model.state_dict(), meta, model, config, inputs)
    else:
        export = _adapter_export(model, adapt, config, meta, inputs, backbone)
    export.run = run.path
    return export


def _adapter_export(model: nn.Module, adapt: AdaptInfo, config: RunConfig, meta: dict, inputs: torch.Tensor,
                    backbone_file: Path | None) -> Export:
    """``backbone_file``: the run's checked backbone file (None: the run reads none)."""
    from adaptcli.methods.apply import adapter_state_dict

    return Export(ExportMode.ADAPTER_ONLY, adapter_state_dict(model, adapt), meta, model, config, inputs, backbone_file,
                  checkable=backbone_file is not None)


def _merged_state(model: nn.Module, adapt: AdaptInfo, config: RunConfig, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Fold the method into a copy; its keys must be exactly the plain backbone's."""
    from adaptcli.deploy.build import plain_model
    from adaptcli.methods.apply import merge_method

    state = merge_method(copy.deepcopy(model), adapt).state_dict()
    expected, found = set(plain_model(meta).state_dict()), set(state)
    if expected != found:
        extra = sorted(found - expected) or sorted(expected - found)
        raise NotMergeableError(
            f"the merged {config.method} model does not have {config.model.name}'s key names (first: {extra[0]}); "
            "export with --full instead"
        )
    return state


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
