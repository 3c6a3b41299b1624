"""The header of an exported file (:class:`ExportHeader`): what a deployer needs, as string values."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn

from adaptcli.config import RunConfig
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError
from adaptcli.runs.info import RunInfo


def create_kwargs(config: RunConfig, num_classes: int) -> dict[str, Any]:
    """Keyword arguments of ``timm.create_model(config.model.name, **kwargs)`` for the plain model."""
    from adaptcli.models.build import model_size_kwargs

    return {"num_classes": num_classes, **model_size_kwargs(config.model)}


@dataclass
class ExportHeader:
    """The header of an exported file: what a deployer needs besides the tensors, so that the export stands
    alone (classes, task kind, input size and normalisation, how to build the model, the run's configuration).

    Stored as string values (non-strings JSON-encoded) in the safetensors metadata, ONNX ``metadata_props``
    and a timm folder's ``config.json``. Exports written before a key was recorded read it as None.
    """

    format: str
    backbone: str
    method: str
    modality: str
    classes: list[str]
    num_classes: int
    input_size: list[int]
    mean: list[float]
    std: list[float]
    create_kwargs: dict[str, Any]
    config: dict[str, Any] | None = None
    adaptcli_version: str | None = None
    num_frames: int | None = None
    task: str | None = None  # single-label / multi-label (None: exported before it was recorded: single-label)
    views: str | None = None
    data_fingerprint: str | None = None  # SHA-256 of the training data's dataset.json
    backbone_sha256: str | None = None  # the frozen backbone the run started from, when it was a file
    frame_shift: dict[str, Any] | None = None  # an image ViT on frames: attach_frame_shift's arguments (zeroi2v)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        return self.task == "multi-label"

    @classmethod
    def of_run(cls, mode: ExportMode, model: nn.Module, config: RunConfig, info: RunInfo) -> ExportHeader:
        """The header of an export of a run (``info`` is its :class:`~adaptcli.runs.info.RunInfo`)."""
        from importlib.metadata import version
        from adaptcli.runs.build import is_video_model, normalisation

        norm = normalisation(model)
        video = is_video_model(model)
        size = config.model.img_size
        return cls(
            format=mode.header_format, backbone=config.model.name, method=config.method,
            modality="video" if video else "image", classes=list(info.classes), num_classes=int(info.num_classes),
            input_size=[3, size, size], mean=list(norm.mean), std=list(norm.std),
            create_kwargs=create_kwargs(config, int(info.num_classes)), config=config.to_dict(),
            adaptcli_version=version("adaptcli"), num_frames=config.model.num_frames if video else None,
            task=info.task or "single-label", views=config.eval.views, data_fingerprint=info.data_fingerprint,
            backbone_sha256=info.backbone_sha256, frame_shift=getattr(model, "frame_shift", None),
        )

    def to_dict(self) -> dict[str, Any]:
        """Header fields in their historical order, those not set left out (``save_tensors`` JSON-encodes the
        non-strings)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> ExportHeader:
        """The decoded header of any adaptcli export (``KeyError`` naming a missing field)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        header = cls(**{k: v for k, v in meta.items() if k in known})
        header.extra = {k: v for k, v in meta.items() if k not in known}
        return header

    @classmethod
    def read(cls, path: str | Path) -> ExportHeader:
        """The header of an exported file (only the header is read); a one-line error for a file adaptcli
        did not export."""
        return cls.from_dict(read_header(path))


def export_metadata(mode: ExportMode, model: nn.Module, config: RunConfig, info: RunInfo) -> dict[str, Any]:
    """Header fields of an export (:class:`ExportHeader` as the dict the formats write), without a local path:
    an export is shared, and the machine it was made on is nobody else's business (files keep their names)."""
    meta = ExportHeader.of_run(mode, model, config, info).to_dict()
    checkpoint = (meta.get("config") or {}).get("model", {}).get("checkpoint")
    if checkpoint:
        meta["config"]["model"]["checkpoint"] = Path(checkpoint).name
    # the configuration and the header's own strings; never the class names (``/m/01g317`` is a label)
    return {key: without_local_paths(value) if key == "config" or isinstance(value, str) else value
            for key, value in meta.items()}


def without_local_paths(value: Any) -> Any:
    """``value`` with every absolute path string (in lists and dicts too) replaced by the file's name."""
    if isinstance(value, dict):
        return {key: without_local_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_local_paths(item) for item in value]
    if isinstance(value, str) and (value.startswith("~") or Path(value).is_absolute()):
        return Path(value).name
    return value


def read_header(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported file, JSON values decoded (only the header is read).

    What a deployer needs besides the model: ``classes``, ``task``, ``input_size``, ``mean``, ``std``, ...
    (:class:`ExportHeader`'s fields); a one-line error for a file adaptcli did not export.
    """
    from adaptcli.deploy.formats import decode_header
    from adaptcli.io import read_safetensors

    path = Path(path)
    _, raw = read_safetensors(path, tensors=False)
    meta = decode_header(raw)
    if ExportMode.from_header(meta.get("format")) is None:
        found = meta.get("format", "no adaptcli format field")
        raise AdaptError(
            f"{path} is not an adaptcli export ({found}); write one with 'adaptcli export --run RUN ...'"
        )
    return meta
