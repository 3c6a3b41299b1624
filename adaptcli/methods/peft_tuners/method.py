"""peft's tuners injected into our timm models, and merged back through peft.

``peft.inject_adapter_in_model`` wraps each target layer in a tuner layer that keeps the original
as ``base_layer`` (so ``blocks.0.attn.qkv.weight`` becomes ``blocks.0.attn.qkv.base_layer.weight``,
which :func:`adaptcli.methods.apply.plain_key` maps back). Merging calls each tuner layer's own
``merge()`` and puts its base layer back: the plain architecture with timm's key names.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from adaptcli.errors import ConfigError, NotMergeableError
from adaptcli.methods.base import Method
from adaptcli.methods.peft_tuners.checks import check_kinds, check_ranks
from adaptcli.methods.peft_tuners.config import LoraOptions, PeftOptions
from adaptcli.methods.pace import PaceSite
from adaptcli.methods.peft_tuners.eva import (as_started, eva_options, initialise_eva, lora_ranks, record_shapes,
                                              wants_eva)
from adaptcli.methods.peft_tuners.refusals import check_needs_only_injection
from adaptcli.methods.peft_tuners.rewrites import (check_rewriting_config, fold_offset, keep_original, rewrites_base,
                                                   target_weights)
from adaptcli.methods.peft_tuners.split import SplitQkvLora, inject_split, merge_split
from adaptcli.models.blocks import attention_inputs, call_qkv_modules, qualified_name, set_submodule, transformer_blocks

DEFAULT_TARGETS = ["qkv"]


def tuner_types() -> dict[str, type]:
    """peft's config class of every tuner that injects into a model's layers (no prompt learning)."""
    from peft.config import PromptLearningConfig
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    return {str(getattr(key, "value", key)): cls for key, cls in sorted(PEFT_TYPE_TO_CONFIG_MAPPING.items())
            if key in PEFT_TYPE_TO_TUNER_MAPPING and not issubclass(cls, PromptLearningConfig)}


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def build_peft_config(peft_type: str, options: dict[str, Any]) -> Any:
    """peft's own config object for ``peft_type`` with ``options``; bad input is one line naming the valid ones."""
    types = tuner_types()
    name = str(peft_type).upper()
    if name not in types:
        close = difflib.get_close_matches(name, list(types), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"method.peft_type: '{peft_type}' is not a peft tuner{hint}; choose one of {', '.join(types)}")
    cls = types[name]
    if not isinstance(options, dict):
        raise ConfigError(f"method.peft_config must be a mapping of {cls.__name__}'s options, not "
                          f"{str(options)[:60]!r}")
    check_needs_only_injection(name, options)
    fields = [f.name for f in dataclasses.fields(cls) if f.init and f.name != "peft_type"]
    for key in options:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"method.peft_config: {cls.__name__} has no option '{key}'{hint}; valid: {', '.join(fields)}"
            )
    if "target_modules" in fields and "target_modules" not in options:
        options = {**options, "target_modules": list(DEFAULT_TARGETS)}
    check_kinds(cls, options)
    if isinstance(options.get("eva_config"), dict):  # peft >= 0.20 converts it itself; 0.19 takes the class only
        from peft import EvaConfig

        try:
            options = {**options, "eva_config": EvaConfig(**options["eva_config"])}
        except TypeError as exc:
            raise ConfigError(f"method.peft_config.eva_config: {_one_line(exc)}") from exc
    if name == "LORA":
        options = eva_options(options)  # peft's default eva_config given, so that its config class does not warn
    try:
        return cls(**options)
    except Exception as exc:  # noqa: BLE001 - peft's checks raise what they like: one line, --debug shows it
        raise ConfigError(f"method.peft_config: {cls.__name__} refused the options: {_one_line(exc)}") from exc


def lora_config(options: LoraOptions, use_dora: bool) -> Any:
    return build_peft_config("LORA", {
        "r": options.r, "lora_alpha": options.alpha, "lora_dropout": options.dropout,
        "target_modules": list(options.target_modules), "use_dora": use_dora,
    })


def resolve_qkv_target(config: Any, model: nn.Module) -> None:
    """The target name ``qkv`` (the default) means each block's attention input projection: timm's fused
    ``qkv`` Linear or, in a model without one, the separate q/k/v Linears (EVA-02's ``q_proj``/``k_proj``/
    ``v_proj``), named ``attn.<name>`` so nothing outside the blocks' attention (SigLIP's pool) matches."""
    targets = getattr(config, "target_modules", None)
    if not isinstance(targets, (list, set)) or "qkv" not in targets:
        return
    if any(name.rsplit(".", 1)[-1] == "qkv" and isinstance(module, nn.Linear) for name, module in model.named_modules()):
        return
    try:
        blocks = transformer_blocks(model)
    except ValueError:  # no transformer blocks: peft names what it could not find
        return
    separate: list[str] = []
    for _, block in blocks:
        for layer in attention_inputs(block):
            name = "attn." + qualified_name(block.attn, layer)
            if name not in separate:
                separate.append(name)
    if separate:
        config.target_modules = type(targets)([t for t in targets if t != "qkv"] + separate)


def tuner_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


class PeftMethod(Method):
    """Injects a peft config; subclasses say which."""

    def peft_config(self, options: Any) -> Any:
        raise NotImplementedError

    def inject(self, model: nn.Module, options: Any) -> list[str]:
        from peft import inject_adapter_in_model
        from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

        config = self.peft_config(options)
        resolve_qkv_target(config, model)
        check_ranks(config, model, "method.peft_config." if isinstance(options, PeftOptions) else "method.")
        originals = None
        if rewrites_base(config):  # PiSSA / OLoRA: the user's weights are kept, see rewrites.py
            check_rewriting_config(config)
            originals = target_weights(model, config)
            if any(p.is_meta for p in model.parameters()):  # shapes only (counting): no weights to factorise
                config = dataclasses.replace(config, init_lora_weights=True)
        try:
            tuner = PEFT_TYPE_TO_TUNER_MAPPING[config.peft_type]
            # peft < 0.21 has no such flag: its inject_adapter_in_model builds the tuner model itself.
            if getattr(tuner, "uses_shared_state", True):
                # VeRA and the like keep state on the tuner model: build it (as get_peft_model does); it
                # injects into ``model`` in place, and every layer keeps a reference to what it shares.
                tuner(model, config, adapter_name="default")
            else:
                inject_adapter_in_model(config, model)
        except Exception as exc:  # noqa: BLE001 - whatever peft raises for options it cannot use: one line
            if isinstance(exc, NotImplementedError) and any(p.is_meta for p in model.parameters()):
                raise  # an op that reads values (SHiRA's torch.nonzero): the caller counts on real weights instead
            raise ConfigError(f"{self.name}: peft could not inject {type(config).__name__} into "
                              f"{type(model).__name__}: {_one_line(exc)}") from exc
        if originals is not None:
            keep_original(model, tuner_layers(model), originals)
        call_qkv_modules(model)
        # The tuner's own modules (lora_A, lora_B, magnitudes, ...): everything beside each base layer.
        return [f"{name}.{child}" for name, layer in tuner_layers(model)
                for child, _ in layer.named_children() if child != "base_layer"]

    def needs_data_pass(self, options: Any) -> bool:
        return wants_eva(self.peft_config(options))

    def initialise_from_data(self, model: nn.Module, options: Any, batches: Iterable[torch.Tensor]) -> str:
        before = list(lora_ranks(model))
        layers = initialise_eva(model, batches)
        line = f"EVA: {layers} LoRA layers start from the principal directions of their inputs on the training stream"
        recorded = record_shapes(model, options.peft_config, before)
        if recorded == options.peft_config:
            return line
        keys = [key for key in recorded if recorded[key] != options.peft_config.get(key)]
        options.peft_config = recorded  # the run's configuration, recorded after this pass, rebuilds these shapes
        ranks = list(lora_ranks(model).values())
        plain = f", {layers - len(ranks)} left plain at rank 0" if len(ranks) < layers else ""
        return (f"{line}; its rank redistribution (eva_config.rho) gave ranks {min(ranks, default=0)} to "
                f"{max(ranks, default=0)}{plain}, recorded in the run as method.peft_config.{' and '.join(keys)}")

    def started_options(self, recorded: Any, given: Any) -> Any:
        if not (isinstance(recorded, PeftOptions) and isinstance(given, PeftOptions)
                and recorded.peft_type == given.peft_type):
            return recorded
        return dataclasses.replace(recorded, peft_config=as_started(recorded.peft_config, given.peft_config))

    def existing_parameters(self, model: nn.Module) -> list[str]:
        # peft marks what its config trains (adapters, and biases with bias="all"); keep that choice.
        return [name for name, param in model.named_parameters() if param.requires_grad]

    def merge(self, model: nn.Module) -> None:
        for name, layer in tuner_layers(model):
            try:
                fold_offset(layer)
                layer.merge()
            except (NotImplementedError, ValueError, TypeError, AttributeError) as exc:
                raise NotMergeableError(
                    f"peft cannot merge {type(layer).__name__} ({_one_line(exc)}); export with --full or "
                    "--adapter-only instead"
                ) from exc
            set_submodule(model, name, layer.get_base_layer())


def check_split(options: LoraOptions) -> bool:
    """Whether ``options`` ask for ``qkv: split``; options that only apply to the other choice are one line."""
    if options.qkv == "split":
        if list(options.target_modules) != DEFAULT_TARGETS:
            raise ConfigError(f"method.qkv=split adapts the q/k/v rows of each block's qkv; method.target_modules "
                              f"{options.target_modules} would be ignored: leave it at [qkv] or use method.qkv=fused")
        return True
    if options.init != "lora" or options.dropout_mask != "shared":
        key = "init" if options.init != "lora" else "dropout_mask"
        raise ConfigError(f"method.{key}={getattr(options, key)} applies with method.qkv=split only: "
                          "add --set method.qkv=split")
    if sorted(options.split_targets) != ["k", "q"]:
        raise ConfigError(f"method.split_targets={options.split_targets} applies with method.qkv=split only: "
                          "add --set method.qkv=split")
    return False


class Lora(PeftMethod):
    """peft's LoRA, or :mod:`~adaptcli.methods.peft_tuners.split` with ``qkv: split``."""

    use_dora = False

    def peft_config(self, options: LoraOptions) -> Any:
        return lora_config(options, use_dora=self.use_dora)

    def inject(self, model: nn.Module, options: LoraOptions) -> list[str]:
        if not check_split(options):
            return super().inject(model, options)
        return inject_split(model, options.split_targets, options.r, options.alpha, options.dropout, self.use_dora,
                            init=options.init, per_part_dropout=options.dropout_mask == "per_part")

    def existing_parameters(self, model: nn.Module) -> list[str]:
        return super().existing_parameters(model) if tuner_layers(model) else []

    def merge(self, model: nn.Module) -> None:
        merge_split(model)
        super().merge(model)

    def pace_sites(self, model: nn.Module) -> list[PaceSite]:
        """LoRA: ``lora_B``'s output (times the constant scaling, which the noise commutes with); DoRA:
        the magnitude module's, peft's whole update ``(m/||W'|| - 1) W x + m/||W'|| B A x s``."""
        sites = []
        for name, layer in tuner_layers(model):
            for adapter in layer.active_adapters:
                if layer.use_dora.get(adapter):
                    sites.append(PaceSite(f"{name}.lora_magnitude_vector.{adapter}", layer.lora_magnitude_vector[adapter]))
                else:
                    sites.append(PaceSite(f"{name}.lora_B.{adapter}", layer.lora_B[adapter]))
        for name, layer in model.named_modules():
            if isinstance(layer, SplitQkvLora):
                if layer.lora_magnitude:
                    raise ConfigError("train.pace_sigma: DoRA with method.qkv=split has no module whose output is "
                                      "the update; use method.qkv=fused with PACE")
                sites += [PaceSite(f"{name}.lora_B.{part}", module) for part, module in layer.lora_B.items()]
        return sites


class Dora(Lora):
    use_dora = True


class AnyPeftTuner(PeftMethod):
    def peft_config(self, options: PeftOptions) -> Any:
        return build_peft_config(options.peft_type, options.peft_config)
