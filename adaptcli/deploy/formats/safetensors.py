"""One ``.safetensors`` file with adaptcli's header: what ``adaptcli.load`` and plain timm read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptcli.deploy.formats import ExportFormat, register

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export


def write(export: "Export", out: Path) -> dict[str, Any]:
    """Write to a temporary name, load that file back and compare logits, then rename to ``out``."""
    from adaptcli.deploy.check import check_difference, max_abs_difference
    from adaptcli.deploy.load import load
    from adaptcli.io import atomic_path, save_tensors

    diff = None
    with atomic_path(out) as tmp:
        staged = tmp.with_name(tmp.name + ".safetensors")  # the loaders want the suffix
        try:
            save_tensors(staged, export.state, export.meta)
            if export.checkable:
                reloaded = load(staged, backbone=export.backbone_file)
                diff = max_abs_difference(export.model, reloaded, export.inputs)
                check_difference(diff, export.check_name)
            staged.rename(tmp)
        finally:
            staged.unlink(missing_ok=True)
    return {"max_abs_diff": diff, "tensors": len(export.state)}


register(ExportFormat(
    name="safetensors",
    summary="one .safetensors file with the configuration in its header (adaptcli.load, plain timm)",
    modes=("merge", "full", "adapter-only"),
    write=write,
    suffix=".safetensors",
))
