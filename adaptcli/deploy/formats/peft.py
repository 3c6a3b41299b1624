"""peft's own adapter folder: ``adapter_config.json`` + ``adapter_model.safetensors``, what
``peft.PeftModel.from_pretrained(timm.create_model(BACKBONE, num_classes=N), DIR)`` loads.

For runs of ``lora``, ``dora`` and ``peft`` (the methods injected through peft): the tuner's weights under
peft's key names, and the trained classifier as a module peft saves whole (``modules_to_save: [head]``).
The folder is checked by loading it with ``PeftModel.from_pretrained`` onto the run's backbone weights and
comparing logits. A head with a norm before it (``head.norm``) is not timm's plain ``head``: refused.

The weights file's metadata keeps peft's ``format: pt`` and adds the rest of adaptcli's header (classes,
normalisation, configuration), so ``adaptcli predict`` and ``eval`` open the folder with its backbone.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from adaptcli.deploy.formats import ExportFormat, Opened, Written, register
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import Export

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
CHECK = "PeftModel.from_pretrained check"
PEFT_FORMAT = "pt"  # the ``format`` metadata peft (and transformers) write into their safetensors files
PREFIX = "base_model.model."  # how PeftModel names the wrapped model's modules


def peft_files(export: "Export"):  # -> (peft config, state dict)
    """peft's config (with the head to save) and its state dict of the run's model, or a one-line refusal."""
    from peft import get_peft_model_state_dict

    model, config = export.model, export.config
    if getattr(config.method_options, "qkv", "fused") == "split":
        raise AdaptError("--format peft cannot hold method.qkv=split (peft's LoRA updates whole layers, not the q/k/v "
                         "rows of qkv): export --adapter-only or --merge instead")
    if "default" not in getattr(model, "peft_config", {}):
        raise AdaptError(f"--format peft holds runs of methods injected through peft (lora, dora, peft); "
                         f"this run used {config.method}: export --adapter-only instead")
    if config.head.norm != "none":
        raise AdaptError(f"--format peft needs timm's plain head, but this run puts a {config.head.norm} norm before "
                         "it (head.norm); export --adapter-only or --full instead")
    peft_config = copy.deepcopy(model.peft_config["default"])
    peft_config.modules_to_save = ["head"]
    peft_config.base_model_name_or_path = str(export.meta["backbone"])
    peft_config.inference_mode = True
    state = {PREFIX + key: value for key, value in get_peft_model_state_dict(model, adapter_name="default").items()}
    state.update({f"{PREFIX}head.{name}": value for name, value in model.head.state_dict().items()})
    return peft_config, state


#: ``PeftModel.from_pretrained`` keyword: the adapter is stored in float32 already, and peft 0.19's
#: up-cast step names ``torch.float8_e8m0fnu``, which torch < 2.7 lacks (the lowest supported pair fails
#: without it).
LOAD_KWARGS = {"autocast_adapter_dtype": False}


def load_folder(folder: Path, base):  # -> nn.Module
    """What a user does: ``PeftModel.from_pretrained(base, folder)`` in eval mode."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(folder), **LOAD_KWARGS).eval()


def write(export: "Export", out: Path) -> Written:
    """The folder under a temporary name, checked on the run's backbone when it is at hand, then renamed."""
    from adaptcli.deploy.adapter import AdapterSwitcher
    from adaptcli.deploy.check import check_difference, max_abs_difference
    from adaptcli.io import atomic_path, save_tensors

    peft_config, state = peft_files(export)
    diff = None
    with atomic_path(out) as tmp:
        tmp.mkdir()
        peft_config.save_pretrained(str(tmp))
        save_tensors(tmp / WEIGHTS, state, {**export.meta, "format": PEFT_FORMAT})
        if export.backbone_file is not None:
            base = copy.deepcopy(AdapterSwitcher(export.backbone_file).backbone_for(export.meta))
            diff = max_abs_difference(export.model, load_folder(tmp, base), export.inputs)
            check_difference(diff, CHECK)
    kwargs = ", ".join(f"{k}={v!r}" for k, v in export.meta["create_kwargs"].items())
    return Written(tensors=len(state), max_abs_diff=diff, check=CHECK,
                   use=(f'use: PeftModel.from_pretrained(timm.create_model("{export.meta["backbone"]}", {kwargs}, '
                        f'pretrained=True), "{out}", autocast_adapter_dtype=False)  (the backbone weights the run started from)',))


def open_folder(path: Path, backbone: Path | None = None) -> Opened:
    """The adaptcli header kept in the weights' metadata; ``load()`` puts the folder on ``backbone`` with peft."""
    from adaptcli.deploy.formats import decode_header
    from adaptcli.io import read_safetensors

    _, raw = read_safetensors(path / WEIGHTS, tensors=False)
    header = decode_header({key: value for key, value in raw.items() if key != "format"})
    if "config" not in header or "classes" not in header:
        raise AdaptError(f"{path} is a peft folder without adaptcli's header (written by peft, or by an older "
                         "adaptcli); export the run again with --adapter-only --format peft")
    if backbone is None:
        raise AdaptError(f"{path} is peft's adapter folder; pass the backbone weights it attaches to "
                         "(predict --backbone FILE, eval --checkpoint FILE, adaptcli.load(path, backbone=FILE))")
    header["format"] = ExportMode.ADAPTER_ONLY.header_format

    def load():  # -> nn.Module
        from adaptcli.deploy.adapter import AdapterSwitcher

        return load_folder(path, AdapterSwitcher(backbone).backbone_for(header))

    return Opened(header, f"peft folder {path}", load)


register(ExportFormat(
    name="peft",
    summary="peft's adapter folder (adapter_config.json + adapter_model.safetensors) for lora, dora and peft runs; "
            "PeftModel.from_pretrained loads it",
    modes=(ExportMode.ADAPTER_ONLY,),
    open=open_folder,
    write=write,
    marker=CONFIG,
    entries=(CONFIG, WEIGHTS),
))
