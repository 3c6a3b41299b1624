"""The adapter-only Hub folder (``export --adapter-only --format hub``), for every method: the task's own
tensors in ``adapter.safetensors`` (adaptcli's adapter file, whose header names the backbone architecture
and the SHA-256 of the backbone file the run started from) and a model card, ``README.md``, saying how to
load it: ``adaptcli.load("hf-hub:USER/NAME", backbone=FILE)`` or ``adaptcli predict hf-hub:USER/NAME
--backbone FILE``. The backbone itself is not in the folder: the user passes that same file, checked
against the recorded hash before anything is loaded. Runs of the LoRA family (methods injected through
peft) also get peft's own files (``adapter_config.json``, ``adapter_model.safetensors``), so
``PeftModel.from_pretrained`` reads the same repository.

Registered as the adapter-only side of the ``hub`` format (:mod:`adaptcli.deploy.formats.hub`).
"""

from __future__ import annotations

import json

from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptcli.deploy.formats import Opened, Written
from adaptcli.errors import AdaptError
from adaptcli.ownership import Marker

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export

WEIGHTS = "adapter.safetensors"
MARKER = Marker(WEIGHTS)


def owns(path: Path) -> bool:
    """Whether ``path`` is an adapter-only Hub folder (its ``adapter.safetensors``)."""
    return path.is_dir() and MARKER.found_in(path)


def _peft_folder(export: "Export", folder: Path) -> bool:
    """Add peft's files to ``folder`` for a run of the LoRA family that ``--format peft`` can hold, written and
    checked by that format; False (nothing added) for any other run."""
    from adaptcli.deploy.formats import peft as peft_format

    if "default" not in getattr(export.model, "peft_config", {}):
        return False
    staged = folder / ".peft"
    try:
        peft_format.write(export, staged)
    except AdaptError as exc:
        if str(exc).startswith(peft_format.CHECK):
            raise  # written but wrong: never published
        return False  # a refusal (split qkv, a norm before the head, ...): adaptcli's adapter file alone holds it
    for name in (peft_format.CONFIG, peft_format.WEIGHTS):
        (staged / name).replace(folder / name)
    staged.rmdir()
    return True


def write(export: "Export", out: Path, card_name: str, metadata: dict[str, Any], full_card: str) -> Written:
    """The adapter file (checked on the run's backbone, as ``--adapter-only`` checks), peft's files for the LoRA
    family (checked as ``--format peft`` checks), and the card (:func:`card_text` of the hub format's
    ``metadata`` and ``full_card``), renamed into place together."""
    from adaptcli.deploy.formats import safetensors as file_format
    from adaptcli.io import atomic_path, write_text

    with atomic_path(out) as tmp:
        tmp.mkdir()
        written = file_format.write(export, tmp / WEIGHTS)
        with_peft = _peft_folder(export, tmp)
        write_text(tmp / card_name, card_text(export, metadata, full_card, with_peft))
    backbone = _backbone_hint(export)
    return Written(tensors=written.tensors, max_abs_diff=written.max_abs_diff, limit=written.limit,
                   check=written.check,
                   use=(f"use: import adaptcli; model = adaptcli.load({json.dumps(str(out))}, "
                        f"backbone={json.dumps(backbone)})",
                        f'     once pushed: adaptcli.load("hf-hub:USER/NAME", backbone="{backbone}"), or '
                        f"adaptcli predict hf-hub:USER/NAME IMAGES --backbone {backbone}",
                        "publish: adaptcli export ... --adapter-only --format hub --push USER/NAME, or "
                        f"huggingface-cli upload USER/NAME {out}"))


def _backbone_hint(export: "Export") -> str:
    return str(export.backbone_file) if export.backbone_file is not None else "BACKBONE.safetensors"


def card_text(export: "Export", metadata: dict[str, Any], full_card: str, with_peft: bool = False) -> str:
    """The hub card of the run (its ``metadata`` block and the text ``full_card`` of the hub format: results,
    training) with a "Use" section for an adapter: which backbone file it needs (name, architecture,
    SHA-256) and the lines that load it."""
    import yaml

    meta = {**metadata, "library_name": "adaptcli"}  # not a timm folder: timm.create_model cannot build it alone
    body = full_card.split("\n---\n", 1)[1].split("\n## Use\n", 1)[0].rstrip("\n")
    header = export.meta
    sha = header.get("backbone_sha256")
    original = Path(str(export.backbone_file)).name if export.backbone_file is not None else "the run's backbone file"
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip("\n"), "---", body, "",
             "## Use", "",
             f"This repository holds only the task's adapter and classifier ({WEIGHTS}); it attaches to the "
             "backbone weights the run started from, which you pass as a file:", "",
             f"- architecture: `{header['backbone']}`",
             f"- backbone file: `{original}`",
             f"- SHA-256: `{sha}`" if sha else "- SHA-256: not recorded (the run read no backbone file)",
             "", "adaptcli checks the file against this hash before loading.", "",
             "```python", "import adaptcli", "",
             f'model = adaptcli.load("hf-hub:USER/NAME", backbone="{original}")', "```", "",
             "or from the command line:", "", "```bash",
             f"adaptcli predict hf-hub:USER/NAME --backbone {original} photos/", "```", ""]
    if with_peft:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in header["create_kwargs"].items())
        lines += ["peft's own files are here too (the backbone weights loaded into the timm model first):", "",
                  "```python", "import timm", "from peft import PeftModel", "",
                  f'base = timm.create_model("{header["backbone"]}", {kwargs})',
                  'model = PeftModel.from_pretrained(base, "USER/NAME", autocast_adapter_dtype=False)', "```", ""]
    return "\n".join(lines)


def open_folder(path: Path, backbone: Path | None = None) -> Opened:
    """The adapter file's header; refuses a missing ``backbone`` or one whose SHA-256 is not the recorded one."""
    from adaptcli.deploy.formats import safetensors as file_format
    from adaptcli.deploy.header import read_header
    from adaptcli.files import file_sha256

    header = read_header(path / WEIGHTS)
    if backbone is None:
        raise AdaptError(f"{path} holds only a task's adapter on {header['backbone']}; pass the backbone file it "
                         "attaches to (predict --backbone FILE, eval --checkpoint FILE, adaptcli.load(path, "
                         "backbone=FILE); its README.md names the file and its SHA-256)")
    if not Path(backbone).is_file():
        raise AdaptError(f"backbone file not found: {backbone}; pass the backbone file the adapter attaches to")
    recorded = header.get("backbone_sha256")
    if recorded and file_sha256(backbone) != recorded:
        raise AdaptError(f"{backbone} is not the backbone {path} was trained on: its SHA-256 differs from the "
                         f"recorded {recorded}; pass the backbone file its README.md names")
    opened = file_format.open_file(path / WEIGHTS, backbone)
    return Opened(opened.header, f"hub adapter folder {path}", opened.load)
