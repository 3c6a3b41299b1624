"""adaptcli: parameter-efficient adaptation of Vision Transformers from the command line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from adaptcli.deploy.export import ExportResult

__version__ = "0.1.0"


def load(path: str | Path, backbone: str | Path | None = None) -> "nn.Module":
    """The model of an ``adaptcli export`` file or folder, ready in eval mode (see :func:`adaptcli.deploy.loading.load`).

    ``path`` may also be ``hf-hub:USER/NAME``, a hub folder read through huggingface_hub's cache.
    ``backbone=FILE`` is needed for adapter-only exports (a file, peft's folder, an adapter-only hub folder,
    which checks the file's SHA-256). Imports torch on first use only.
    """
    from adaptcli.deploy.loading import load as _load

    return _load(path, backbone=backbone)


def export_run(run_dir: str | Path, out: str | Path, mode: str, fmt: str = "safetensors", *,
               overwrite: bool = False, backbone: str | Path | None = None) -> "ExportResult":
    """Export a run folder: ``mode`` is ``merge``, ``full`` or ``adapter-only``, ``fmt`` a registered
    format (``safetensors``, ``timm``, ``onnx``; see :mod:`adaptcli.deploy`).

    An existing ``out`` is replaced only with ``overwrite=True``, and never a file the run reads.
    ``backbone``: where the run's backbone file moved (it must be the same file: run.json's hash)."""
    from adaptcli.deploy.export import export_run as _export

    return _export(Path(run_dir), Path(out), mode, fmt, overwrite=overwrite,
                   backbone=Path(backbone) if backbone is not None else None)


def _register_with_timm() -> None:
    """Import adaptcli's architectures (``video_vit_*``, ``swin3d_*``, ``adaptcli_adapted``); each module
    registers its own with timm's ``@register_model`` where it defines them.

    When one of adaptcli's own modules imported timm first, it may be half-imported now and the
    architectures may need a name it has not defined yet: that import fails (an ``ImportError`` naming
    the adaptcli module), nothing is registered here, and the module that needs the architectures
    imports them itself (``models/build.py``, ``deploy/``).
    """
    try:
        import adaptcli.deploy.timm_arch  # noqa: F401  (also imports adaptcli.models.architectures)
    except ImportError as exc:
        if not (exc.name or "").startswith("adaptcli."):
            raise  # a missing dependency is said as it is, not hidden


class _AfterTimmImport:
    """Register with timm as soon as timm is imported: a one-shot import hook.

    Kept because nothing plainer works: timm reads no entry points (timm 1.0.28 to 1.0.31 look names up
    only in their own registry), ``import adaptcli`` must stay free of torch, and after
    ``import adaptcli; import timm`` the names must be known (``test_import_adaptcli_registers_with_timm_in_either_order``
    in tests/export/test_timm_folder.py; the documented ``import adaptcli; timm.create_model("local-dir:DIR")``).
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            run_timm = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                run_timm(module)
                _register_with_timm()

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "timm" in sys.modules:
    _register_with_timm()
elif not any(isinstance(finder, _AfterTimmImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AfterTimmImport())


__all__ = ["__version__", "export_run", "load"]
