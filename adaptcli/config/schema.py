"""A recipe's schema, by pydantic: validation and coercion of every section, and its JSON schema.

The sections stay plain dataclasses; pydantic reads their annotations (types and annotated-types
bounds) and the docstring under each field. One pydantic model per method holds the sections and the
method's options; its configuration reaches the dataclasses inside it: unknown keys are refused,
numbers written as YAML strings (``1e-3``) are read, and each field's docstring is its description.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from adaptcli.config.messages import bool_for_number, error_message
from adaptcli.config.sections import SECTIONS, valid_keys
from adaptcli.errors import ConfigError
from adaptcli.methods.registry import method_spec

_CONFIG = ConfigDict(extra="forbid", use_attribute_docstrings=True, coerce_numbers_to_str=True)


def sections_of(method: str) -> dict[str, type]:
    """Section name -> dataclass for a recipe of ``method`` (``method`` is its options)."""
    return {**SECTIONS, "method": method_spec(method).options}


@functools.cache
def _recipe_model(method: str, options: type) -> type[BaseModel]:
    fields: dict[str, Any] = {name: (cls, Field(default_factory=cls)) for name, cls in SECTIONS.items()}
    fields["method"] = (options, Field(default_factory=options))
    return create_model(f"recipe_{method}", __config__=_CONFIG, **fields)


def recipe_model(method: str) -> type[BaseModel]:
    """The pydantic model of a resolved recipe for ``method`` (built once per method)."""
    spec = method_spec(method)
    return _recipe_model(spec.name, spec.options)


def validate(tree: dict[str, Any], method: str) -> dict[str, Any]:
    """The sections of ``tree`` (section name -> mapping of keys) as validated dataclass instances, or a
    one-line :class:`ConfigError` for the first thing wrong."""
    refused = bool_for_number(tree, sections_of(method))
    if refused:
        raise ConfigError(refused)
    try:
        recipe = recipe_model(method).model_validate(tree)
    except ValidationError as exc:
        message = error_message(exc.errors()[0], tree, sections_of(method), valid_keys(method))
        raise ConfigError(message) from None
    return {name: getattr(recipe, name) for name in sections_of(method)}


def json_schema(method: str) -> dict[str, Any]:
    """The JSON schema of a recipe for ``method``: every section, its keys, types, ranges, defaults and
    descriptions (``adaptcli config --schema``). The sections are written out in place."""
    spec = method_spec(method)
    generated = recipe_model(method).model_json_schema()
    schema = _inline(generated, generated.pop("$defs", {}))
    for name, cls in sections_of(method).items():
        _add_factory_defaults(schema["properties"][name], cls)
        # extra="forbid" holds in every section: pydantic 2.14 says so in a dataclass's schema, 2.12 does not
        schema["properties"][name]["additionalProperties"] = False
    method_section = schema["properties"]["method"]
    method_section["properties"] = {"name": {"const": spec.name, "description": "The method."},
                                    **method_section.get("properties", {})}
    # A recipe file may also hold per_method and sweep sections (adaptcli.config.recipes).
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": f"adaptcli recipe ({spec.name})", "additionalProperties": True}


def _add_factory_defaults(section: dict[str, Any], cls: type) -> None:
    """The defaults pydantic leaves out of the schema: those a ``default_factory`` makes (lists, mappings)."""
    for entry in dataclasses.fields(cls):
        if entry.default_factory is not dataclasses.MISSING:
            section["properties"][entry.name].setdefault("default", entry.default_factory())


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/X"}`` replaced by X itself."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        extra = {key: value for key, value in node.items() if key != "$ref"}
        return {**_inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs), **_inline(extra, defs)}
    return {key: _inline(value, defs) for key, value in node.items()}
