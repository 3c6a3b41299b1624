"""The typed run configuration shared by every command.

A recipe (YAML) is resolved in layers: schema defaults, the recipe's top-level sections, the
recipe's ``per_method.<method>`` section, then ``--set KEY=VALUE`` overrides. The result is a
:class:`RunConfig` that validates every key and type and can be written back to YAML.

This module must not import torch: ``--help`` stays instant.

Why the validation is not pydantic's: pydantic v2 is a dependency neither of adaptcli nor of
accelerate (the lowest supported environment, ``constraints-lowest.txt``, installs no pydantic), so it
would be a new dependency for what the checks below already do from the same annotated-types
annotations, with one-line messages and did-you-mean suggestions on top. The JSON schema comes from
those annotations too (:func:`json_schema`, ``adaptcli config --schema``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin, get_type_hints

import annotated_types
import yaml
from annotated_types import Ge, Gt, Interval

from adaptcli.data.config import DataConfig
from adaptcli.errors import ConfigError
from adaptcli.files import read_text_bounded
from adaptcli.methods.registry import NoOptions, method_names, method_spec
from adaptcli.models.config import ModelConfig

# --------------------------------------------------------------------------- sections

DEFAULT_METHOD = "linear"


Count = Annotated[int, Ge(1)]
Rate = Annotated[float, Interval(ge=0, lt=1)]


@dataclass
class TrainConfig:
    """Optimisation. ``lr`` is multiplied by effective batch / ``lr_base_batch`` when that is set.

    ``recompute``: trade compute for activation memory (see :mod:`adaptcli.models.recompute`).
    ``save_every_steps``: also checkpoint every N optimiser steps inside an epoch (``--resume``
    continues from the exact batch); ``None`` checkpoints at epoch ends only.

    The schedule is timm's ``CosineLRScheduler``: ``schedule_unit`` says whether the lr changes every
    optimiser step or once per epoch (timm's ``t_in_epochs``, as timm's train.py and Adapter+ do);
    ``warmup_lr`` is where the warm-up starts (``None``: lr / (warm-up length + 1)); ``warmup_prefix``
    starts the cosine after the warm-up (``false``: the warm-up replaces its first part, timm train.py's
    default); the last ``cooldown_epochs`` of ``epochs`` stay at ``min_lr`` (timm train.py's cool-down).
    ``mixup``/``cutmix``/``random_erasing`` run on the training batch in the training process
    (:mod:`adaptcli.engine.batch_augment`). ``layer_decay``: block i of L trains at lr x layer_decay^(L - i) (timm's ``param_groups_layer_decay``;
    the embedding one step lower, the final norm with the last block, the head at lr). ``ema``: keep a weight EMA with this decay (:mod:`adaptcli.engine.ema`), validated and saved beside
    the raw weights.
    """

    epochs: Count = 10
    batch_size: Count = 32
    accum_steps: Count = 1
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: Annotated[float, Gt(0)] = 0.1
    lr_base_batch: Optional[Count] = 256
    momentum: Rate = 0.9
    weight_decay: Annotated[float, Ge(0)] = 0.0
    warmup_epochs: Annotated[float, Ge(0)] = 1.0
    min_lr: Annotated[float, Ge(0)] = 0.0
    schedule_unit: Literal["step", "epoch"] = "step"
    warmup_lr: Optional[Annotated[float, Ge(0)]] = None
    warmup_prefix: bool = True
    cooldown_epochs: Annotated[int, Ge(0)] = 0
    clip_grad: Optional[Annotated[float, Gt(0)]] = None
    label_smoothing: Rate = 0.0
    ema: Optional[Annotated[float, Interval(gt=0, lt=1)]] = None  # weight EMA decay (timm ModelEmaV3); None: off
    layer_decay: Optional[Annotated[float, Interval(gt=0, le=1)]] = None  # layer-wise lr decay (timm, BEiT); None: off
    # timm Mixup / CutMix on each training batch (alpha 0: off); label_smoothing goes into their targets
    mixup: Annotated[float, Ge(0)] = 0.0
    cutmix: Annotated[float, Ge(0)] = 0.0
    mixup_prob: Annotated[float, Interval(ge=0, le=1)] = 1.0
    mixup_switch_prob: Annotated[float, Interval(ge=0, le=1)] = 0.5
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    random_erasing: Annotated[float, Interval(ge=0, le=1)] = 0.0  # timm RandomErasing probability (pixel mode)
    precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on a CUDA GPU that has it, else fp32
    #: none | frozen (selective recomputation in blocks with frozen weights) | all (every block)
    recompute: Literal["none", "frozen", "all"] = "none"
    feature_cache: bool = True
    seed: Annotated[int, Ge(0)] = 0
    eval_every: Count = 1
    keep_checkpoints: Count = 2
    max_steps_per_epoch: Optional[Count] = None
    save_every_steps: Optional[Count] = None
    log_with: Optional[str] = None  # Accelerate trackers, comma-separated: tensorboard, wandb, mlflow, ...
    compile: bool = False  # torch.compile the trained model in place (state-dict keys unchanged)


@dataclass
class EvalConfig:
    """Testing: ``views`` is CLIPSxCROPS for video (softmax averaged per video)."""

    views: str = "1x1"
    batch_size: Count = 32


@dataclass
class HeadConfig:
    """The classifier: ``norm: bn`` puts ``BatchNorm1d(affine=False)`` before it, for every method
    (AdaptFormer's scripts); ``none`` is the plain Linear (ARC's and VPT's protocols)."""

    norm: Literal["none", "bn"] = "none"


@dataclass
class RunConfig:
    """A fully resolved run: model, method, data, training and evaluation settings."""

    method: str = DEFAULT_METHOD
    model: ModelConfig = field(default_factory=ModelConfig)
    method_options: Any = field(default_factory=NoOptions)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict in the recipe layout (``method:`` holds name and options)."""
        return {
            "model": dataclasses.asdict(self.model),
            "method": {"name": self.method, **dataclasses.asdict(self.method_options)},
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "eval": dataclasses.asdict(self.eval),
            "head": dataclasses.asdict(self.head),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "head": HeadConfig,
}


# --------------------------------------------------------------------------- typed conversion


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict or tp is dict:
        return "a mapping (YAML such as '{r: 16}')"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key}: expected one of {_type_name(tp)}, got {value!r}")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        (inner,) = get_args(tp)
        return [coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:  # free-form options checked by their owner (peft's config classes)
        if isinstance(value, dict):
            return dict(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-2" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is type(None):
        if value is None:
            return None
    else:  # pragma: no cover - schema error, not user error
        raise TypeError(f"unsupported annotation {tp!r} for {key}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _fields(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def build_section(cls: type, values: dict[str, Any], prefix: str, valid_keys: list[str]) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, rejecting unknown keys with a suggestion and
    values outside the ranges the fields declare (``Annotated[int, Ge(1)]``) with the range."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix}: expected a mapping of keys, got {values!r}")
    schema = _fields(cls)
    ranges = get_type_hints(cls, include_extras=True)
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}"
        if key not in schema:
            raise ConfigError(unknown_key_message(dotted, valid_keys))
        kwargs[key] = coerce(value, schema[key], dotted)
        check_range(kwargs[key], ranges[key], dotted)
    return cls(**kwargs)


# --------------------------------------------------------------------------- ranges


def _constraints(metadata: tuple[Any, ...]) -> list[Any]:
    """The annotated-types constraints in ``Annotated`` metadata (``Interval``/``Len`` unpacked)."""
    found: list[Any] = []
    for item in metadata:
        if isinstance(item, annotated_types.GroupedMetadata):
            found.extend(item)
        elif isinstance(item, annotated_types.BaseMetadata):
            found.append(item)
    return found


def _holds(value: Any, constraint: Any) -> bool:
    checks = {
        annotated_types.Ge: lambda c: value >= c.ge, annotated_types.Gt: lambda c: value > c.gt,
        annotated_types.Le: lambda c: value <= c.le, annotated_types.Lt: lambda c: value < c.lt,
        annotated_types.MinLen: lambda c: len(value) >= c.min_length,
        annotated_types.MaxLen: lambda c: len(value) <= c.max_length,
        annotated_types.Predicate: lambda c: bool(c.func(value)),
    }
    return checks[type(constraint)](constraint)


def _describe(constraints: list[Any]) -> str:
    """``>= 1``, ``in [0, 1)``, ``2 values``, a predicate's docstring."""
    low = next((("[", c.ge) for c in constraints if isinstance(c, annotated_types.Ge)), None) or \
        next((("(", c.gt) for c in constraints if isinstance(c, annotated_types.Gt)), None)
    high = next(((c.le, "]") for c in constraints if isinstance(c, annotated_types.Le)), None) or \
        next(((c.lt, ")") for c in constraints if isinstance(c, annotated_types.Lt)), None)
    parts = []
    if low and high:
        parts.append(f"in {low[0]}{low[1]}, {high[0]}{high[1]}")
    elif low:
        parts.append(f"{'>=' if low[0] == '[' else '>'} {low[1]}")
    elif high:
        parts.append(f"{'<=' if high[1] == ']' else '<'} {high[0]}")
    sizes = [c.min_length for c in constraints if isinstance(c, annotated_types.MinLen)]
    if sizes:
        parts.append(f"{sizes[0]} values")
    parts += [(c.func.__doc__ or c.func.__name__).strip() for c in constraints if isinstance(c, annotated_types.Predicate)]
    return ", ".join(parts)


def _unwrap_optional(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        fitting = [arg for arg in get_args(hint) if arg is not type(None)]
        return fitting[0] if len(fitting) == 1 else Any
    return hint


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (already of the right type) lies in the range ``hint`` declares."""
    hint = _unwrap_optional(hint)
    if value is None:
        return True
    if get_origin(hint) is Annotated:
        base, *metadata = get_args(hint)
        return all(_holds(value, c) for c in _constraints(tuple(metadata))) and _fits(value, base)
    if get_origin(hint) is list and isinstance(value, list):
        (inner,) = get_args(hint)
        return all(_fits(v, inner) for v in value)
    return True


def range_text(hint: Any) -> str:
    """The declared range of a field in words (empty when it declares none)."""
    hint = _unwrap_optional(hint)
    if get_origin(hint) is Annotated:
        base, *metadata = get_args(hint)
        return ", ".join(p for p in (_describe(_constraints(tuple(metadata))), range_text(base)) if p)
    if get_origin(hint) is list:
        inner = range_text(get_args(hint)[0])
        return f"each {inner}" if inner else ""
    return ""


def check_range(value: Any, hint: Any, key: str) -> None:
    """A one-line :class:`ConfigError` naming key, value and range when ``value`` is outside it."""
    if not _fits(value, hint):
        raise ConfigError(f"{key}={value!r} is out of range (expected {range_text(hint)})")


# --------------------------------------------------------------------------- JSON schema


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
_BOUNDS = {annotated_types.Ge: ("minimum", "ge"), annotated_types.Gt: ("exclusiveMinimum", "gt"),
           annotated_types.Le: ("maximum", "le"), annotated_types.Lt: ("exclusiveMaximum", "lt"),
           annotated_types.MinLen: ("minItems", "min_length"), annotated_types.MaxLen: ("maxItems", "max_length")}


def _schema_of(hint: Any) -> dict[str, Any]:
    """The JSON schema of one field's annotation, its annotated-types ranges included (a predicate
    becomes the description: JSON schema cannot say "increasing")."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *metadata = get_args(hint)
        schema = _schema_of(base)
        for constraint in _constraints(tuple(metadata)):
            if type(constraint) in _BOUNDS:
                key, attribute = _BOUNDS[type(constraint)]
                schema[key] = getattr(constraint, attribute)
            elif isinstance(constraint, annotated_types.Predicate):
                schema["description"] = (constraint.func.__doc__ or constraint.func.__name__).strip()
        return schema
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema_of(arg) for arg in get_args(hint)]}
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    if origin is list:
        return {"type": "array", "items": _schema_of(get_args(hint)[0])}
    if origin is dict or hint is dict:
        return {"type": "object"}
    return {"type": _JSON_TYPES[hint]} if hint in _JSON_TYPES else {}


def _section_schema(cls: type, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    hints = get_type_hints(cls, include_extras=True)
    properties = dict(extra or {})
    for f in dataclasses.fields(cls):
        schema = _schema_of(hints[f.name])
        if f.default is not dataclasses.MISSING:
            schema["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            schema["default"] = f.default_factory()  # type: ignore[misc]
        properties[f.name] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False}


def json_schema(method: str) -> dict[str, Any]:
    """The JSON schema of a recipe for ``method``: every section, its keys, types, ranges and defaults,
    read from the same annotations the validator checks (``adaptcli config --schema``)."""
    spec = method_spec(method)
    sections = {name: _section_schema(cls) for name, cls in _SECTIONS.items()}
    sections["method"] = _section_schema(spec.options, {"name": {"const": spec.name}})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"adaptcli recipe ({spec.name})",
            "type": "object", "properties": sections, "additionalProperties": True}


#: Keys of earlier versions, and what replaces them.
RENAMED_KEYS = {
    "train.grad_checkpointing": "train.recompute (all = the old grad_checkpointing=true, none = false)",
}


def unknown_key_message(key: str, valid_keys: list[str]) -> str:
    if key in RENAMED_KEYS:
        return f"configuration key '{key}' was replaced: use {RENAMED_KEYS[key]}"
    close = difflib.get_close_matches(key, valid_keys, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else "run with a valid key from the recipe docs"
    return f"unknown configuration key '{key}': {hint}"


def valid_keys(method: str) -> list[str]:
    """Every dotted key a recipe or ``--set`` may name for this method."""
    keys = [f"{section}.{name}" for section, cls in _SECTIONS.items() for name in _fields(cls)]
    keys += [f"method.{name}" for name in _fields(method_spec(method).options)]
    return keys


# --------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as YAML (``3`` is an int, ``[1,2]`` a list, ``null`` None)."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE (for example train.epochs=3), got '{text}'")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(tree: dict[str, Any], key: str, value: Any, method: str) -> None:
    keys = valid_keys(method)
    if key not in keys:
        raise ConfigError(unknown_key_message(key, keys))
    section, name = key.split(".")
    tree.setdefault(section, {})
    if not isinstance(tree[section], dict):
        raise ConfigError(unknown_key_message(key, valid_keys(method)))
    tree[section][name] = value


# --------------------------------------------------------------------------- recipes


def shipped_recipes() -> dict[str, Path]:
    """Recipes installed with the package (``recipes/*.yaml`` in the source tree)."""
    source_tree = Path(__file__).resolve().parent.parent / "recipes"
    if source_tree.is_dir():
        folder = source_tree
    else:  # installed: recipes/ ships as the package data of adaptcli.recipes
        from importlib import resources

        folder = Path(str(resources.files("adaptcli.recipes")))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def load_recipe(recipe: str | Path) -> dict[str, Any]:
    """Read a recipe by shipped name (``vtab``) or by path to a YAML file."""
    shipped = shipped_recipes()
    path = Path(recipe)
    if str(recipe) in shipped:
        path = shipped[str(recipe)]
    elif not path.exists():
        names = ", ".join(sorted(shipped)) or "none"
        raise ConfigError(f"recipe '{recipe}' is neither a shipped recipe ({names}) nor a YAML file")
    try:
        data = yaml.safe_load(read_text_bounded(path)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of sections (model, data, train, ...)")
    return data


def resolve(
    recipe: str | Path | dict[str, Any] | None,
    method: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    task: str | None = None,
) -> RunConfig:
    """Resolve a recipe, a method and ``--set`` overrides into a validated :class:`RunConfig`.

    ``task`` (a suite's task name) adds the recipe's ``per_method.<method>.per_task.<task>`` section, the
    settings a paper's scripts give that one task, after the method's own section and before ``--set``.
    """
    tree = dict(recipe) if isinstance(recipe, dict) else (load_recipe(recipe) if recipe else {})
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in tree.items()}
    recipe_method = tree.get("method")
    method_tree: dict[str, Any] = {}
    if isinstance(recipe_method, dict):
        method_tree = dict(recipe_method)
        recipe_method = method_tree.pop("name", None)
    name = method or recipe_method or DEFAULT_METHOD
    spec = method_spec(name)
    if recipe_method and method and recipe_method != method:
        method_tree = {}  # options in the recipe belong to another method

    per_method = _per_method(tree.pop("per_method", {}))
    tree.pop("method", None)
    tree.pop("sweep", None)  # a suite's tuning grid (see recipe_sweep), not part of one run
    tree["method"] = method_tree
    own = per_method.get(name, {}) or {}
    tree = _deep_merge(tree, {k: v for k, v in own.items() if k not in ("sweep", "per_task")})
    if task is not None:
        tree = _deep_merge(tree, _per_task(own, name).get(task) or {})
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(tree, key, value, name)

    keys = valid_keys(name)
    for section in tree:
        if section not in _SECTIONS and section != "method":
            raise ConfigError(unknown_key_message(section, keys + list(_SECTIONS)))
    sections = {
        section: build_section(cls, tree.get(section) or {}, section, keys)
        for section, cls in _SECTIONS.items()
    }
    options = build_section(spec.options, tree.get("method") or {}, "method", keys)
    _check_schedule(sections["train"])
    _check_augmentation(sections["train"], sections["data"])
    return RunConfig(method=name, method_options=options, **sections)


def _check_schedule(train: TrainConfig) -> None:
    if train.cooldown_epochs >= train.epochs:
        raise ConfigError(f"train.cooldown_epochs ({train.cooldown_epochs}) must be below train.epochs "
                          f"({train.epochs}): the cool-down is the last part of the epochs")


def _check_augmentation(train: TrainConfig, data: DataConfig) -> None:
    mixing = train.mixup > 0 or train.cutmix > 0
    if mixing and train.batch_size % 2:
        raise ConfigError(f"train.mixup/cutmix mix each batch with its reverse and need an even train.batch_size "
                          f"(got {train.batch_size})")
    if data.rand_augment:
        if data.decode == "cuda":
            raise ConfigError("data.rand_augment runs in the loader workers on decoded frames; it does not combine "
                              "with data.decode=cuda: set data.decode=cpu")
        from adaptcli.data.stream.clip_augment import check_rand_augment

        check_rand_augment(data.rand_augment)


def _per_task(own: dict[str, Any], method: str) -> dict[str, Any]:
    per_task = (own.get("per_task") if isinstance(own, dict) else None) or {}
    if not isinstance(per_task, dict) or not all(isinstance(v, dict) or v is None for v in per_task.values()):
        raise ConfigError(f"per_method.{method}.per_task must map task names to recipe sections, "
                          "e.g. {dtd: {train: {lr: 5.0e-3}}}")
    return per_task


def _per_method(per_method: Any) -> dict[str, Any]:
    per_method = per_method or {}
    if not isinstance(per_method, dict):
        raise ConfigError("per_method must map method names to recipe sections")
    unknown = [m for m in per_method if m not in method_names()]
    if unknown:
        raise ConfigError(f"per_method.{unknown[0]}: not a method; choose from {', '.join(method_names())}")
    return per_method


def recipe_sweep(recipe: str | Path | dict[str, Any] | None, method: str) -> dict[str, list[Any]]:
    """The recipe's tuning grid for ``method``: ``sweep:`` (or ``per_method.<method>.sweep:``, which
    replaces it) mapping dotted keys to lists of values. Empty when the recipe has none."""
    tree = dict(recipe) if isinstance(recipe, dict) else (load_recipe(recipe) if recipe else {})
    sweep = tree.get("sweep") or {}
    own = (_per_method(tree.get("per_method")).get(method) or {})
    if isinstance(own, dict) and "sweep" in own:
        sweep = own["sweep"] or {}
    if not isinstance(sweep, dict):
        raise ConfigError("sweep: expected a mapping of dotted keys to lists, e.g. {train.lr: [1.0e-3, 1.0e-2]}")
    keys = valid_keys(method)
    grid: dict[str, list[Any]] = {}
    for key, values in sweep.items():
        if key not in keys:
            raise ConfigError(unknown_key_message(f"sweep: {key}", keys).replace("'sweep: ", "'"))
        grid[key] = list(values) if isinstance(values, (list, tuple)) else [values]
    return grid


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` written by :meth:`RunConfig.to_dict` (e.g. a run's config.yaml)."""
    return resolve(data)


def header_config(meta: dict[str, Any]) -> RunConfig:
    """The configuration stored in an export's header, detached from any checkpoint file or download."""
    config = from_dict(meta["config"])
    config.model.checkpoint = None
    config.model.pretrained = False
    return config


def parse_views(text: str) -> tuple[int, int]:
    """``"2x3"`` -> (2 clips, 3 crops) for ``eval.views`` and ``--views``."""
    try:
        clips, crops = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--views expects CLIPSxCROPS such as 2x3, got '{text}'") from None
    if clips < 1 or crops < 1:
        raise ConfigError(f"--views needs at least one clip and one crop, got '{text}'")
    return clips, crops


def load_run_config(path: str | Path) -> RunConfig:
    """Read a resolved ``config.yaml`` back."""
    return from_dict(yaml.safe_load(read_text_bounded(path)))


__all__ = [
    "RunConfig",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "EvalConfig",
    "HeadConfig",
    "resolve",
    "recipe_sweep",
    "load_recipe",
    "load_run_config",
    "shipped_recipes",
    "parse_override",
    "coerce",
]
