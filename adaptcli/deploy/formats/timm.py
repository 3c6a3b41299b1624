"""A timm model folder: ``config.json`` + ``model.safetensors``, what ``timm.create_model("local-dir:DIR")`` reads.

``--merge`` names the backbone's own architecture (plain timm loads it; adaptcli's video ViTs need
``import adaptcli`` first). ``--full`` names ``adaptcli_adapted`` (:mod:`adaptcli.deploy.timm_arch`),
which rebuilds backbone + method from the configuration in ``model_args`` (after ``import adaptcli``).
The same folder is what the Hugging Face Hub takes for a timm model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptcli.deploy.formats import ExportFormat, Opened, Written, register
from adaptcli.deploy.modes import ExportMode
from adaptcli.ownership import Marker

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export

CONFIG, WEIGHTS = "config.json", "model.safetensors"
#: timm writes config.json too: adaptcli's has its own section (read back by predict)
MARKER = Marker(CONFIG, key="adaptcli")
CHECK = "timm.create_model check"


def timm_config(export: "Export") -> dict[str, Any]:
    """``config.json`` in timm's layout: architecture, ``model_args``, ``pretrained_cfg``, ``label_names``."""
    from adaptcli.deploy.timm_arch import ARCHITECTURE

    meta, data = export.meta, export.config.data
    num_classes = int(meta["num_classes"])
    if export.mode is ExportMode.MERGE and meta.get("frame_shift"):
        from adaptcli.errors import AdaptError

        raise AdaptError("a timm (or hub) folder of a merged zeroi2v run would load as the plain image ViT, without the temporal "
                         "shift; export the merge with --format safetensors (adaptcli.load), or --full --format timm")
    if export.mode is ExportMode.MERGE:
        architecture, model_args = meta["backbone"], dict(meta["create_kwargs"])
    else:
        architecture, model_args = ARCHITECTURE, {"run_config": meta["config"], "num_classes": num_classes}
    squash = data.augment == "resize"  # the eval transform resizes the whole frame, no crop
    return {
        "architecture": architecture,
        "num_classes": num_classes,
        "label_names": list(meta["classes"]),
        "model_args": model_args,
        "pretrained_cfg": {
            "input_size": list(meta["input_size"]),
            "fixed_input_size": True,
            "interpolation": "bilinear",
            "crop_pct": 1.0 if squash else float(data.crop_pct),
            "crop_mode": "squash" if squash else "center",
            "mean": list(meta["mean"]),
            "std": list(meta["std"]),
            "num_classes": num_classes,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
        # the run's configuration: its evaluation transform, for adaptcli predict
        "adaptcli": {k: meta[k] for k in ("backbone", "method", "modality", "task", "adaptcli_version", "num_frames", "config")
                     if k in meta},
    }


def load_folder(path: Path):  # -> nn.Module
    """What a user gets: ``timm.create_model("local-dir:PATH", pretrained=True)`` in eval mode."""
    import timm

    import adaptcli.deploy.timm_arch  # noqa: F401  (adaptcli_adapted, video_vit_*)

    return timm.create_model(f"local-dir:{path}", pretrained=True).eval()


def write(export: "Export", out: Path) -> Written:
    """Write the folder under a temporary name, load it with timm and compare logits, then rename."""
    from adaptcli.deploy.check import checked_difference
    from adaptcli.io import atomic_path, save_tensors, write_json

    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_json(tmp / CONFIG, timm_config(export))
        save_tensors(tmp / WEIGHTS, export.state, export.meta)
        diff, limit = checked_difference(export.model, load_folder(tmp), export.inputs, CHECK)
    return Written(tensors=len(export.state), max_abs_diff=diff, limit=limit, check=CHECK, use=(use_line(export, out),))


def use_line(export: "Export", out: Path) -> str:
    """The Python that loads the folder, runnable as printed (``import adaptcli`` where timm alone lacks the
    architecture)."""
    import json

    imports = "import timm" if timm_knows(timm_config(export)["architecture"]) else "import adaptcli, timm"
    return f"use: {imports}; model = timm.create_model({json.dumps('local-dir:' + str(out))}, pretrained=True)"


def open_folder(path: Path, backbone: Path | None = None) -> Opened:
    """The folder's header, gathered from ``config.json`` (adaptcli's section, the labels, the
    normalisation); ``load()`` is :func:`load_folder`. ``backbone`` is unused: the folder holds every weight."""
    from adaptcli.deploy.timm_arch import ARCHITECTURE
    from adaptcli.files import read_json

    config = read_json(path / CONFIG)
    pretrained = config.get("pretrained_cfg") or {}
    full = config.get("architecture") == ARCHITECTURE
    header = {**config["adaptcli"], "format": (ExportMode.FULL if full else ExportMode.MERGE).header_format,
              "classes": config.get("label_names") or [], "num_classes": config.get("num_classes"),
              "mean": pretrained.get("mean"), "std": pretrained.get("std")}
    return Opened(header, f"timm folder {path}", lambda: load_folder(path))


def timm_knows(architecture: str) -> bool:
    """Whether timm itself defines ``architecture`` (else adaptcli registers it on import)."""
    from timm.models import model_entrypoint

    return not model_entrypoint(architecture).__module__.startswith("adaptcli.")


register(ExportFormat(
    name="timm",
    summary="a folder timm.create_model('local-dir:DIR', pretrained=True) loads (config.json + model.safetensors)",
    modes=(ExportMode.MERGE, ExportMode.FULL),
    open=open_folder,
    write=write,
    marker=MARKER,
    entries=(CONFIG, WEIGHTS),
))
