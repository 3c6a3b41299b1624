"""The typed run configuration shared by every command.

A recipe (YAML) is resolved in layers: schema defaults, the recipe's top-level sections, the
recipe's ``per_method.<method>`` section, then ``--set KEY=VALUE`` overrides. The result is a
:class:`RunConfig` whose every key, type and range pydantic has checked, and which can be written
back to YAML.

- :mod:`~adaptcli.config.sections`: the sections (dataclasses with annotated-types bounds and a docstring
  per key) and :class:`RunConfig`;
- :mod:`~adaptcli.config.overrides`: ``--set`` keys and values;
- :mod:`~adaptcli.config.recipes`: recipe files and their resolution;
- :mod:`~adaptcli.config.schema`: validation and the JSON schema (``adaptcli config --schema``), by pydantic;
- :mod:`~adaptcli.config.messages`: the one-line errors (key, value, allowed range, did-you-mean).

This package must not import torch: ``--help`` stays instant.
"""

from __future__ import annotations

from adaptcli.config.messages import RENAMED_KEYS, unknown_key_message
from adaptcli.config.overrides import parse_override
from adaptcli.config.recipes import from_dict, header_config, load_recipe, recipe_sweep, resolve, saved_recipe, shipped_recipes
from adaptcli.config.schema import json_schema
from adaptcli.config.sections import (
    DEFAULT_METHOD,
    DataConfig,
    EvalConfig,
    HeadConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    parse_views,
    valid_keys,
)

__all__ = [
    "DEFAULT_METHOD",
    "RENAMED_KEYS",
    "RunConfig",
    "ModelConfig",
    "DataConfig",
    "TrainConfig",
    "EvalConfig",
    "HeadConfig",
    "resolve",
    "recipe_sweep",
    "saved_recipe",
    "load_recipe",
    "from_dict",
    "header_config",
    "json_schema",
    "parse_override",
    "parse_views",
    "shipped_recipes",
    "unknown_key_message",
    "valid_keys",
]
