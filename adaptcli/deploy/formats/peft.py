"""peft's own adapter folder: ``adapter_config.json`` + ``adapter_model.safetensors``, what
``peft.PeftModel.from_pretrained(base, DIR)`` loads onto the plain backbone the run started from.

For runs of ``lora``, ``dora`` and ``peft`` (the methods injected through peft): the tuner's weights under
peft's key names, and every module the run trains outside the tuner (the classifier, ``fc_norm`` where the
backbone has weights there) as a module peft saves whole (``modules_to_save``); a classifier with a norm
before it (``head.norm: bn``) is saved folded into the plain Linear, as ``--merge`` folds it. A trained
tensor peft can hold neither way is refused in one line before anything is written. The folder is checked
by loading it exactly as the printed ``use:`` lines do (on the run's own backbone file) and comparing logits.

The weights file's metadata keeps peft's ``format: pt`` and adds the rest of adaptcli's header (classes,
normalisation, configuration), so ``adaptcli predict`` and ``eval`` open the folder with its backbone.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING

from adaptcli.deploy.formats import ExportFormat, Opened, Written, register
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from adaptcli.deploy.export import Export

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
CHECK = "PeftModel.from_pretrained check"
PEFT_FORMAT = "pt"  # the ``format`` metadata peft (and transformers) write into their safetensors files
PREFIX = "base_model.model."  # how PeftModel names the wrapped model's modules
ADAPTER = "default"  # the adapter name peft gives the run's tuner


def saved_modules(export: "Export") -> tuple[dict[str, "nn.Module"], list[str]]:
    """What the run trains outside peft's tuner layers: the modules peft's ``modules_to_save`` holds whole, by
    name (a classifier with a norm before it folded into one Linear), and any other trained tensor (peft
    saves some itself, such as LoRA's ``bias: all``; :func:`peft_files` checks that it did)."""
    from adaptcli.methods.head import NormHead
    from adaptcli.models.blocks import head_modules

    heads = dict(head_modules(export.model))
    found: dict[str, nn.Module] = {}
    loose = []
    for key in export.state:  # what the run trained (the adapter-only state)
        if ADAPTER in key.split("."):
            continue  # a tuner layer's own tensor (peft keeps them under the adapter's name)
        name = next((n for n in heads if key.startswith(n + ".")), None)
        if name is None:
            loose.append(key)
            continue
        module = heads[name]
        found[name] = module.folded() if isinstance(module, NormHead) else module
    return found, loose


def refusal(export: "Export", key: str) -> AdaptError:
    """The one line for a trained tensor peft's folder cannot hold."""
    return AdaptError(f"--format peft cannot hold {key}: {export.config.method} trains it outside peft's tuner and "
                      f"peft saves no such tensor of {export.config.model.name}; export --adapter-only --format "
                      "safetensors instead")


def peft_files(export: "Export", base: "nn.Module"):  # -> (peft config, state dict, names of modules saved whole)
    """peft's config (with the modules to save) and the state dict peft itself saves of the run's tensors
    (put into a fresh ``PeftModel`` of the plain backbone, as peft's ``save_pretrained`` sees them), or a
    one-line refusal naming the first trained tensor it cannot hold. ``base``: a fresh plain backbone (wrapped here)."""
    from peft import get_peft_model, get_peft_model_state_dict

    from adaptcli.methods.peft_tuners.rewrites import as_plain_lora, convert_state, offset_keys

    model, config = export.model, export.config
    if getattr(config.method_options, "qkv", "fused") == "split":
        raise AdaptError("--format peft cannot hold method.qkv=split (peft's LoRA updates whole layers, not the q/k/v "
                         "rows of qkv): export --adapter-only --format safetensors or --merge instead")
    if ADAPTER not in getattr(model, "peft_config", {}):
        raise AdaptError(f"--format peft holds runs of methods injected through peft (lora, dora, peft); "
                         f"this run used {config.method}: export --adapter-only --format safetensors instead")
    bypassed = bias_outside_tuned_qkv(model)
    if bypassed:
        raise AdaptError(f"--format peft cannot hold a tuned qkv of {config.model.name}: its attention ({bypassed}) "
                         "adds the q/v biases outside qkv and, as timm builds it for PeftModel, skips the wrapped "
                         "layer; export --adapter-only --format safetensors (adaptcli.load) or --merge instead")
    offsets = offset_keys(export.state)  # PiSSA / OLoRA: the initial factors (methods/peft_tuners/rewrites.py)
    modules, loose = saved_modules(export)
    loose = [key for key in loose if key not in offsets]
    peft_config = copy.deepcopy(model.peft_config[ADAPTER])
    kept = list(peft_config.modules_to_save or [])  # what the run's own peft_config saves whole already
    peft_config.modules_to_save = kept + [name for name in modules if name not in kept] or None
    peft_config.inference_mode = True
    wrapped = get_peft_model(base, copy.deepcopy(peft_config), adapter_name=ADAPTER, **LOAD_KWARGS)
    state = {PREFIX + key: value for key, value in export.state.items()
             if key not in offsets and not any(key.startswith(name + ".") for name in modules)}
    for name, module in modules.items():
        state.update({f"{PREFIX}{name}.modules_to_save.{ADAPTER}.{key}": value
                      for key, value in module.state_dict().items()})
    unexpected = wrapped.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise refusal(export, unexpected[0].removeprefix(PREFIX))
    saved = get_peft_model_state_dict(wrapped, adapter_name=ADAPTER, save_embedding_layers=False)
    missing = [key for key in loose if PREFIX + key not in saved]
    if missing:
        raise refusal(export, missing[0])
    if offsets:  # a plain LoRA of rank 2r on the original weights, as peft's save_pretrained converts them
        saved = convert_state(wrapped, saved, offsets, PREFIX)
        peft_config = as_plain_lora(peft_config)
    peft_config.base_model_name_or_path = str(export.meta["backbone"])
    return peft_config, saved, list(modules)


def bias_outside_tuned_qkv(model: "nn.Module") -> str | None:
    """The first attention whose fused ``qkv`` a peft tuner wraps while its q/v biases sit outside it (timm's EVA,
    EVA-02 tiny/small): adaptcli runs it through ``qkv`` (``qkv_bias_separate``, see ``call_qkv_modules``), timm's
    default ``F.linear(x, qkv.weight, bias)`` never calls the tuner. None where there is none."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in model.named_modules():
        if getattr(module, "q_bias", None) is not None and isinstance(getattr(module, "qkv", None), BaseTunerLayer):
            return name
    return None


#: ``PeftModel.from_pretrained`` keyword: the adapter is stored in float32 already, and peft 0.19's
#: up-cast step names ``torch.float8_e8m0fnu``, which torch < 2.7 lacks (the lowest supported pair fails
#: without it).
LOAD_KWARGS = {"autocast_adapter_dtype": False}


def load_folder(folder: Path, base):  # -> nn.Module
    """What a user does: ``PeftModel.from_pretrained(base, folder)`` in eval mode."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(folder), **LOAD_KWARGS).eval()


def plain_base(meta: dict, backbone: Path, saved: list[str]):  # -> nn.Module | None
    """The plain backbone with ``backbone`` loaded by ``load_state_dict(strict=False)``, when that loads every
    weight except those of the modules the folder saves whole (adaptcli's ``backbone.safetensors``); None
    for any other file (a checkpoint in another layout: adaptcli's loader reads it)."""
    from adaptcli.deploy.build import plain_model
    from adaptcli.io import read_safetensors
    from adaptcli.models.build import use_fused_attention

    if backbone.suffix != ".safetensors":
        return None
    tensors, _ = read_safetensors(backbone)
    base = plain_model(meta)
    if experimental_attention(base):
        use_fused_attention(base)  # what the use: lines switch on, as the run computed attention
    try:
        result = base.load_state_dict(tensors, strict=False)
    except RuntimeError:  # a shape that differs: another layout
        return None
    missing = [key for key in result.missing_keys if not any(key.startswith(name + ".") for name in saved)]
    return None if missing or result.unexpected_keys else base.eval()


def experimental_attention(model) -> bool:
    """Whether timm left fused attention off somewhere (Swin's window attention, which timm calls experimental);
    adaptcli runs every attention fused, and the two differ in float32 (up to 1e-3 of the logits)."""
    return any(getattr(module, "fused_attn", None) is False for module in model.modules())


def use_lines(meta: dict, backbone: Path | None, out: Path, plain: bool, saved: list[str],
              fused: bool = False) -> tuple[str, ...]:
    """The Python that loads the folder with peft on the run's own backbone file (``plain``: with timm and
    safetensors alone; else with adaptcli's checkpoint loader; None: timm's pretrained weights, which the
    run started from). Runs as printed."""
    from adaptcli.deploy.formats.timm import timm_knows

    name, kwargs = meta["backbone"], ", ".join(f"{k}={v!r}" for k, v in meta["create_kwargs"].items())
    file = json.dumps(str(backbone))
    imports = "import timm" if timm_knows(name) else "import adaptcli, timm  # adaptcli registers " + name
    code = [imports, "from peft import PeftModel"]
    if fused:
        code.append("timm.layers.set_fused_attn(True, experimental=True)  # attention as adaptcli computed it")
    if backbone is None:  # the run started from timm's pretrained weights: no file of its own
        code.append(f"base = timm.create_model({json.dumps(name)}, pretrained=True, {kwargs})")
    elif plain:
        code += ["from safetensors.torch import load_file", f"base = timm.create_model({json.dumps(name)}, {kwargs})",
                 f"base.load_state_dict(load_file({file}), strict=False)  # {', '.join(saved)}: from the folder"]
    else:
        code += ["from adaptcli.models.checkpoints import load_checkpoint",
                 f"base = timm.create_model({json.dumps(name)}, {kwargs})", f"load_checkpoint(base, {file})"]
    code.append(f"model = PeftModel.from_pretrained(base, {json.dumps(str(out))}, autocast_adapter_dtype=False).eval()")
    return tuple(("use: " if i == 0 else "     ") + line for i, line in enumerate(code))


def write(export: "Export", out: Path) -> Written:
    """The folder under a temporary name, checked on the run's backbone as the ``use:`` lines load it, then renamed."""
    from adaptcli.deploy.adapter import AdapterSwitcher
    from adaptcli.deploy.check import checked_difference
    from adaptcli.io import atomic_path, save_tensors

    from adaptcli.deploy.build import plain_model

    probe = plain_model(export.meta)
    fused = experimental_attention(probe)
    peft_config, state, saved = peft_files(export, probe)
    diff, limit, plain = None, None, True
    with atomic_path(out) as tmp:
        tmp.mkdir()
        peft_config.save_pretrained(str(tmp))
        save_tensors(tmp / WEIGHTS, state, {**export.meta, "format": PEFT_FORMAT})
        if export.backbone_file is not None:
            base = plain_base(export.meta, export.backbone_file, saved)
            plain = base is not None
            if base is None:
                base = copy.deepcopy(AdapterSwitcher(export.backbone_file).backbone_for(export.meta))
            diff, limit = checked_difference(export.model, load_folder(tmp, base), export.inputs, CHECK)
    return Written(tensors=len(state), max_abs_diff=diff, limit=limit, check=CHECK,
                   use=use_lines(export.meta, export.backbone_file, out, plain, saved, fused))


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
