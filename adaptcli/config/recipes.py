"""Recipe resolution: schema defaults, the recipe's sections, ``per_method.<method>``, then ``--set``.

A recipe is a YAML file, shipped (``recipes/*.yaml``) or the user's; :func:`resolve` lays its layers
over each other and has pydantic validate the result (:mod:`adaptcli.config.schema`) into a
:class:`RunConfig`, then checks the rules that join two keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adaptcli.config.messages import unknown_key_message
from adaptcli.config.overrides import deep_merge, parse_override, set_dotted
from adaptcli.config.schema import validate
from adaptcli.config.sections import DEFAULT_METHOD, RunConfig, TrainConfig, valid_keys
from adaptcli.data.config import DataConfig
from adaptcli.errors import ConfigError
from adaptcli.files import UnboundedYaml, parse_yaml, read_text_bounded
from adaptcli.methods.registry import all_methods, method_names, method_spec


def shipped_recipes() -> dict[str, Path]:
    """Recipes installed with the package (``recipes/*.yaml`` in the source tree)."""
    source_tree = Path(__file__).resolve().parents[2] / "recipes"
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
        data = parse_yaml(read_text_bounded(path)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    except UnboundedYaml as exc:
        raise ConfigError(f"recipe {path} is refused: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of sections (model, data, train, ...)")
    return data


def resolve(
    recipe: str | Path | dict[str, Any] | None,
    method: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    task: str | None = None,
    *,
    stored: bool = False,
) -> RunConfig:
    """Resolve a recipe, a method and ``--set`` overrides into a validated :class:`RunConfig`.

    ``task`` (a suite's task name) adds the recipe's ``per_method.<method>.per_task.<task>`` section, the
    settings a paper's scripts give that one task, after the method's own section and before ``--set``.
    ``stored``: a configuration adaptcli wrote (a run's config.yaml, an export header), read as it was
    trained: the rule added since (the warm-up ends before the schedule does) does not refuse it.
    """
    tree = dict(recipe) if isinstance(recipe, dict) else (load_recipe(recipe) if recipe else {})
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in tree.items()}
    recipe_method = tree.get("method")
    method_tree: dict[str, Any] = {}
    if isinstance(recipe_method, dict):
        method_tree = dict(recipe_method)
        recipe_method = method_tree.pop("name", None)
    name = method or recipe_method or DEFAULT_METHOD
    keys = valid_keys(name)  # refuses an unknown method with the nearest name
    if recipe_method and method and recipe_method != method:
        method_tree = {}  # options in the recipe belong to another method

    per_method = _per_method(tree.pop("per_method", {}))
    tree.pop("method", None)
    tree.pop("sweep", None)  # a suite's tuning grid (see recipe_sweep), not part of one run
    tree["method"] = method_tree
    own = per_method.get(name, {}) or {}
    tree = deep_merge(tree, {k: v for k, v in own.items() if k not in ("sweep", "per_task")})
    if task is not None:
        tree = deep_merge(tree, _per_task(own, name).get(task) or {})
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(tree, key, value, keys)

    tree = {section: ({} if values is None else values) for section, values in tree.items()}
    sections = validate(tree, name)
    _check_schedule(sections["train"], warmup=not stored)
    _check_augmentation(sections["train"], sections["data"])
    check_pace(sections["train"], name)
    return RunConfig(method=name, method_options=sections.pop("method"), **sections)


def _check_schedule(train: TrainConfig, *, warmup: bool = True) -> None:
    if train.cooldown_epochs >= train.epochs:
        raise ConfigError(f"train.cooldown_epochs ({train.cooldown_epochs}) must be below train.epochs "
                          f"({train.epochs}): the cool-down is the last part of the epochs")
    scheduled = train.epochs - train.cooldown_epochs  # the epochs the warm-up and the cosine share
    if warmup and train.warmup_epochs >= scheduled:
        before = (f"train.epochs - train.cooldown_epochs ({scheduled})" if train.cooldown_epochs
                  else f"train.epochs ({train.epochs})")
        raise ConfigError(f"train.warmup_epochs ({train.warmup_epochs:g}) must be below {before}: the warm-up is the "
                          f"first part of the schedule; lower train.warmup_epochs or raise train.epochs")


def check_pace(train: TrainConfig, method: str) -> None:
    """PACE needs an adapter output to perturb, and its consistency loss needs noise."""
    if not (train.pace_lambda or train.pace_sigma):
        return
    if not method_spec(method).pace:
        able = ", ".join(spec.name for spec in all_methods() if spec.pace)
        raise ConfigError(f"train.pace_lambda/pace_sigma: {method} has no adapter output for PACE's noise; use PACE "
                          f"with {able}, or set train.pace_lambda=0 train.pace_sigma=0")
    if train.pace_lambda and not train.pace_sigma:
        raise ConfigError("train.pace_lambda needs train.pace_sigma > 0: without noise both passes are equal and "
                          "the consistency loss is zero (the paper's VTAB-1k setting is --set train.pace_sigma=1.2); "
                          "to train without PACE, set train.pace_lambda=0 too")


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


def saved_recipe(
    recipe: str | Path | dict[str, Any],
    method: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The recipe ``adaptcli config`` writes: the resolved sections of one run, then the recipe's sweep grid
    and per-task sections for that method under ``per_method.<method>``, so that ``finetune`` and ``suite``
    read from the saved file what they read from ``recipe``, ``method`` and ``overrides``.

    A ``--set`` key is left out of the per-task sections: given to a suite, it holds for every task.
    """
    tree = dict(recipe) if isinstance(recipe, dict) else load_recipe(recipe)
    config = resolve(tree, method=method, overrides=overrides)
    own = _per_method(tree.get("per_method")).get(config.method) or {}
    overridden = {parse_override(text)[0] for text in overrides}
    per_task = {task: _without_keys(sections or {}, overridden)
                for task, sections in _per_task(own, config.method).items()}
    suite: dict[str, Any] = {"sweep": recipe_sweep(tree, config.method)}
    if any(per_task.values()):
        suite["per_task"] = {task: sections for task, sections in per_task.items() if sections}
    return {**config.to_dict(), "per_method": {config.method: suite}}


def _without_keys(sections: dict[str, Any], dotted: set[str]) -> dict[str, Any]:
    """``sections`` without the ``section.key`` entries in ``dotted``; sections left empty are dropped."""
    kept = {name: ({k: v for k, v in values.items() if f"{name}.{k}" not in dotted}
                   if isinstance(values, dict) else values) for name, values in sections.items()}
    return {name: values for name, values in kept.items() if values}


#: Method options whose default changed to the official behaviour (issue 34), with the value adaptcli
#: used before: a configuration written before the option existed lacks the key and is read as trained.
EARLIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "ssf": {"patch_merging": True},  # Swin's merging norms had a scale-shift
    "bitfit": {"fc_norm": "all"},  # fc_norm.weight trained with the head
}


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` written by :meth:`RunConfig.to_dict` (e.g. a run's config.yaml)."""
    method = data.get("method")
    if isinstance(method, dict) and method.get("name") in EARLIER_DEFAULTS:
        data = {**data, "method": {**EARLIER_DEFAULTS[method["name"]], **method}}
    return resolve(data, stored=True)


def header_config(meta: dict[str, Any]) -> RunConfig:
    """The configuration stored in an export's header, detached from any checkpoint file or download."""
    config = from_dict(meta["config"])
    config.model.checkpoint = None
    config.model.pretrained = False
    return config
