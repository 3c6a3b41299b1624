"""One ``.safetensors`` file with adaptcli's header: what ``adaptcli.load`` and plain timm read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptcli.deploy.formats import ExportFormat, Opened, Written, register
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export


def write(export: "Export", out: Path) -> Written:
    """Write to a temporary name, load that file back and compare logits, then rename to ``out``."""
    from adaptcli.deploy.check import checked_difference
    from adaptcli.deploy.loading import load
    from adaptcli.io import atomic_path, save_tensors

    diff = limit = None
    with atomic_path(out) as tmp:
        staged = tmp.with_name(tmp.name + ".safetensors")  # the loaders want the suffix
        try:
            save_tensors(staged, export.state, export.meta)
            if export.checkable:
                reloaded = load(staged, backbone=export.backbone_file)
                diff, limit = checked_difference(export.model, reloaded, export.inputs, export.mode.check)
            staged.rename(tmp)
        finally:
            staged.unlink(missing_ok=True)
    return Written(tensors=len(export.state), max_abs_diff=diff, limit=limit, use=use_lines(export, out))


def use_lines(export: "Export", out: Path) -> tuple[str, ...]:
    """Python that loads ``out``, runnable as printed (merged: also with plain timm; adapter-only: on the run's
    backbone file, and the CLI line that evaluates it on the run's data)."""
    import json

    from adaptcli.deploy.formats.timm import timm_knows

    path = json.dumps(str(out))
    if export.mode is ExportMode.ADAPTER_ONLY:
        backbone = json.dumps(str(export.backbone_file or "BACKBONE.safetensors"))
        return (f"use: import adaptcli; model = adaptcli.load({path}, backbone={backbone})",
                f"cli: adaptcli eval --adapter {quote(out)} --checkpoint {quote(export.backbone_file or 'BACKBONE.safetensors')} "
                f"--data {run_data(export) or 'SHARDS'}")
    lines = [f"use: import adaptcli; model = adaptcli.load({path})"]
    if export.mode is ExportMode.MERGE:
        name = export.meta["backbone"]
        kwargs = ", ".join(f"{k}={v!r}" for k, v in export.meta["create_kwargs"].items())
        imports = "import safetensors.torch, timm" if timm_knows(name) else "import adaptcli, safetensors.torch, timm"
        shift = export.meta.get("frame_shift")
        if shift and "temporal_embedding" in shift:  # the table is a parameter of the shifted model: attach, then load
            lines.append(f"use: import adaptcli.models.frame_shift as fs, safetensors.torch, timm; model = "
                         f"timm.create_model({json.dumps(name)}, {kwargs}); fs.attach_frame_shift(model, "
                         f"{shift['shift_div']!r}, {shift['offsets']!r}, temporal_embedding={shift['temporal_embedding']!r}); "
                         f"model.load_state_dict(safetensors.torch.load_file({path}))")
            return tuple(lines)
        if shift:  # the image ViT's weights, run on frames with the temporal shift
            lines.append(f"use: import adaptcli.models.frame_shift as fs, safetensors.torch, timm; model = "
                         f"timm.create_model({json.dumps(name)}, {kwargs}); model.load_state_dict(safetensors.torch."
                         f"load_file({path})); fs.attach_frame_shift(model, {shift['shift_div']!r}, {shift['offsets']!r})")
            return tuple(lines)
        lines.append(f"use: {imports}; model = timm.create_model({json.dumps(name)}, {kwargs}); "
                     f"model.load_state_dict(safetensors.torch.load_file({path}))  # plain timm")
    return tuple(lines)


def quote(path: object) -> str:
    """A path as a shell word."""
    import shlex

    return shlex.quote(str(path))


def run_data(export: "Export") -> str | None:
    """``--data`` of the run's shard folder (its run.json), with ``--split`` where the run's test split (or, where the
    data lacks it, its validation split) is not eval's default ``test``; None when unknown."""
    from adaptcli.data.splits import eval_split_option
    from adaptcli.files import read_json
    from adaptcli.runs.folder import RunDir

    try:
        data = RunDir(export.run).info().data if export.run is not None else None
        splits = read_json(Path(data) / "dataset.json").get("splits", {}) if data else {}
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    if data is None:
        return None
    return quote(data) + eval_split_option(export.config.data.test_split, export.config.data.val_split, splits)


def open_file(path: Path, backbone: Path | None = None) -> Opened:
    """The header of an adaptcli ``.safetensors`` export; ``load()`` builds its model (adapter-only: on ``backbone``)."""
    from adaptcli.deploy.header import read_header
    from adaptcli.deploy.loading import load_safetensors

    header = read_header(path)
    if ExportMode.from_header(header["format"]) is ExportMode.ADAPTER_ONLY and backbone is None:
        raise AdaptError(f"{path} holds only a task's adapter; pass the backbone weights it attaches to "
                         "(predict --backbone FILE, eval --checkpoint FILE, adaptcli.load(path, backbone=FILE))")
    return Opened(header, f"export {path}", lambda: load_safetensors(path, header, backbone))


register(ExportFormat(
    name="safetensors",
    summary="one .safetensors file with the configuration in its header (adaptcli.load, plain timm)",
    modes=(ExportMode.MERGE, ExportMode.FULL, ExportMode.ADAPTER_ONLY),
    open=open_file,
    write=write,
    suffix=".safetensors",
))
