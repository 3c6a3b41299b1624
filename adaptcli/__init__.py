"""adaptcli: parameter-efficient adaptation of Vision Transformers from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__version__ = "0.1.0"


def load(path: str | Path, backbone: str | Path | None = None) -> "nn.Module":
    """The model of an ``adaptcli export`` file, ready in eval mode (see :func:`adaptcli.deploy.load`).

    ``backbone=FILE`` is needed for adapter-only files. Imports torch on first use only.
    """
    from adaptcli.deploy.load import load as _load

    return _load(path, backbone=backbone)


def export_run(run_dir: str | Path, out: str | Path, mode: str, *, overwrite: bool = False) -> dict[str, Any]:
    """Export a run folder: ``mode`` is ``merge``, ``full`` or ``adapter-only`` (see :mod:`adaptcli.deploy`).

    An existing ``out`` is replaced only with ``overwrite=True``, and never a file the run reads."""
    from adaptcli.deploy.export import export_run as _export

    return _export(Path(run_dir), Path(out), mode, overwrite=overwrite)  # type: ignore[arg-type]


__all__ = ["__version__", "export_run", "load"]
