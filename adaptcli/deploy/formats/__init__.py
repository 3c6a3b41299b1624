"""The export-format registry: how an export is laid out on disk. Torch-free.

A format is one module in this folder that calls :func:`register` at import time and keeps its
heavy imports inside its functions (``adaptcli export --help`` lists the formats without torch).
Its ``write(export, out)`` receives an :class:`~adaptcli.deploy.export.Export` and returns a
:class:`Written`: what it wrote, how it checked, and how the output is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from adaptcli.deploy.modes import ExportMode
from adaptcli.ownership import Marker, wrote_folder
from adaptcli.registry import Registry


@dataclass(frozen=True)
class Written:
    """What a format's ``write`` returns."""

    tensors: int  # how many tensors the output holds
    max_abs_diff: float | None  # its self-check against the run's model; None: no check ran
    check: str | None = None  # the check's name when it is not the mode's own (``ExportMode.check``)
    use: tuple[str, ...] = ()  # lines telling the user how to load the output ("use: ...")


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str  # one line for --help
    modes: tuple[ExportMode, ...]  # which export modes it can hold
    write: Callable[[Any, Path], Written]  # (an adaptcli.deploy.export.Export, the output path)
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


#: Every module of this folder registers its format here (imported on first read).
FORMATS: Registry[ExportFormat] = Registry("export format", lambda fmt: fmt.summary, package=__name__)


def register(fmt: ExportFormat) -> ExportFormat:
    """Called by each format module at import time."""
    return FORMATS.register(fmt)


def export_format(name: str) -> ExportFormat:
    """The format called ``name``, or a one-line error with the closest valid one."""
    return FORMATS.get(name)
