"""The export-format registry: how an export is laid out on disk. Torch-free.

A format is one module in this folder that calls :func:`register` at import time and keeps its
heavy imports inside its functions (``adaptcli export --help`` lists the formats without torch).
Its ``write(export, out)`` receives an :class:`~adaptcli.deploy.export.Export` and returns a
:class:`Written`: what it wrote, how it checked, and how the output is used.

A format that can be read back also says whether a path is its own (``owns``; by default its file
suffix or its folder's marker) and opens it (``open(path, backbone)``, an :class:`Opened`): :func:`open_export` asks every
format, so ``predict`` and ``eval`` take whatever ``export`` wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError
from adaptcli.ownership import Marker, wrote_folder
from adaptcli.registry import Registry


@dataclass(frozen=True)
class Written:
    """What a format's ``write`` returns."""

    tensors: int  # how many tensors the output holds
    max_abs_diff: float | None  # its self-check against the run's model; None: no check ran
    check: str | None = None  # the check's name when it is not the mode's own (``ExportMode.check``)
    limit: float | None = None  # the check's limit where it is not TOLERANCE (adaptcli.deploy.check.rounding_limit)
    use: tuple[str, ...] = ()  # lines telling the user how to load the output ("use: ...")


@dataclass(frozen=True)
class Opened:
    """What a format's ``open`` returns: the export's header, read and checked, and how to load its model.

    ``header`` holds the fields of :func:`~adaptcli.deploy.header.read_header` (``format``, ``classes``,
    ``num_classes``, ``mean``, ``std``, ``modality``, ``config``, ...), so a command checks the export
    against its data before ``load()`` does the work (a ready ``nn.Module`` in eval mode)."""

    header: dict[str, Any]
    source: str  # what was opened, in words ("timm folder DIR"), for messages
    load: Callable[[], Any]
    #: what ``load()`` returns: "torch" (an ``nn.Module``) or "onnxruntime" (a CPU function, logits of a batch)
    runtime: str = "torch"


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str  # one line for --help
    modes: tuple[ExportMode, ...]  # which export modes it can hold
    write: Callable[[Any, Path], Written]  # (an adaptcli.deploy.export.Export, the output path)
    #: the read side (None: write-only): ``open(path, backbone)``, ``backbone`` the weights an adapter-only
    #: export attaches to; ``owns(path)``: whether a path is this format's (None: ends in ``suffix``, or
    #: for a folder format holds its ``marker``)
    open: Callable[[Path, Path | None], Opened] | None = None
    owns: Callable[[Path], bool] | None = None
    suffix: str | None = None  # required file suffix; None: the output is a folder
    #: folder formats: the file that marks a folder this format wrote, and everything it writes there
    #: (--overwrite replaces only such a folder: :func:`adaptcli.ownership.claim_folder`)
    marker: str | Marker | None = None
    entries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.suffix is None and self.marker is None:
            raise ValueError(f"export format {self.name} writes a folder: name its marker, the file that says "
                             "adaptcli wrote the folder")

    def wrote(self, path: Path) -> bool:
        """Whether ``path`` is a folder this format wrote (its marker, nothing but its entries)."""
        return self.marker is not None and wrote_folder(path, self.marker, self.entries)

    def reads(self, path: Path) -> bool:
        """Whether :func:`open_export` hands ``path`` to this format."""
        if self.open is None:
            return False
        if self.owns is not None:
            return self.owns(path)
        if self.suffix is not None:
            return path.suffix == self.suffix
        marker = Marker(self.marker) if isinstance(self.marker, str) else self.marker
        return marker is not None and path.is_dir() and marker.found_in(path)


#: Every module of this folder registers its format here (imported on first read).
FORMATS: Registry[ExportFormat] = Registry("export format", lambda fmt: fmt.summary, package=__name__)


def register(fmt: ExportFormat) -> ExportFormat:
    """Called by each format module at import time."""
    return FORMATS.register(fmt)


def export_format(name: str) -> ExportFormat:
    """The format called ``name``, or a one-line error with the closest valid one."""
    return FORMATS.get(name)


def _readers() -> list[ExportFormat]:
    """The formats with an ``open`` side, by name (whatever order their modules were imported in)."""
    return sorted((fmt for fmt in FORMATS.entries() if fmt.open is not None), key=lambda fmt: fmt.name)


def readable() -> str:
    """What :func:`open_export` takes, in words (``peft or timm folders; .onnx or .safetensors files``)."""
    formats = _readers()
    folders = [fmt.name for fmt in formats if fmt.suffix is None]
    files = [str(fmt.suffix) for fmt in formats if fmt.suffix is not None]
    said = [f"{_or(folders)} folders" if folders else "", f"{_or(files)} files" if files else ""]
    return "; ".join(part for part in said if part)


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def open_export(path: Path, backbone: Path | None = None, also: str | None = None) -> Opened:
    """The export at ``path`` (or ``hf-hub:USER/NAME``, read through huggingface_hub's cache), opened by the format it belongs to (its header only: ``load()`` reads the
    weights); a one-line error naming what adaptcli reads for anything else (``also``: what else the
    caller takes, such as "a run folder")."""
    from dataclasses import replace

    from adaptcli.deploy.hub_source import hub_folder, is_hub_name

    if is_hub_name(path):  # hf-hub:USER/NAME: the snapshot folder in huggingface_hub's cache
        opened = open_export(hub_folder(path), backbone, also)
        return replace(opened, source=f"{path} ({opened.source})")
    path = Path(path)
    for fmt in _readers():
        if fmt.reads(path):
            return fmt.open(path, backbone)  # type: ignore[misc]  (reads: open is set)
    expected = f"{also} or an export adaptcli reads" if also else "an export adaptcli reads"
    raise AdaptError(f"{path} is not {expected} ({readable()}); pass what finetune or export wrote")


def decode_header(raw: dict[str, str]) -> dict[str, Any]:
    """String metadata (a safetensors or ONNX header) with its JSON-encoded values decoded."""
    import json

    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (ValueError, RecursionError):  # a plain string, or JSON nested too deeply to be adaptcli's
            decoded[key] = value
    return decoded
