"""One-line configuration errors: the key, the value and what it allows.

pydantic finds what is wrong (:mod:`adaptcli.config.schema`); this module says it in one line: an
unknown key with the nearest valid one, a value of the wrong type with the type, a number outside its
range with the range read from the field's annotated-types bounds (``train.lr=0.0 is out of range
(expected > 0)``).
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import annotated_types

#: Keys of earlier versions, and what replaces them.
RENAMED_KEYS = {
    "train.grad_checkpointing": "train.recompute (all = the old grad_checkpointing=true, none = false)",
}

#: pydantic error types that mean "the right type, outside the declared range".
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long",
                 "predicate_failed"}
_UNKNOWN_KEY_ERRORS = {"unexpected_keyword_argument", "extra_forbidden"}


def unknown_key_message(key: str, valid_keys: list[str]) -> str:
    if key in RENAMED_KEYS:
        return f"configuration key '{key}' was replaced: use {RENAMED_KEYS[key]}"
    close = difflib.get_close_matches(key, valid_keys, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else "run with a valid key from the recipe docs"
    return f"unknown configuration key '{key}': {hint}"


def error_message(error: dict[str, Any], tree: dict[str, Any], sections: dict[str, type],
                  valid_keys: list[str]) -> str:
    """One line for pydantic's ``error`` (an item of ``ValidationError.errors()``) on ``tree``, the recipe
    that ``sections`` (section name -> dataclass) validated."""
    section, *rest = [str(part) for part in error["loc"]]
    if error["type"] in _UNKNOWN_KEY_ERRORS:
        dotted = ".".join([section, *rest[:1]])
        return unknown_key_message(dotted, valid_keys if rest else valid_keys + list(sections))
    if not rest:
        return f"{section}: expected a mapping of keys, got {tree.get(section)!r}"
    name = rest[0]
    hint = get_type_hints(sections[section], include_extras=True)[name]
    value = tree[section][name]
    if error["type"] in _RANGE_ERRORS:
        return f"{section}.{name}={_as_declared(value, hint)!r} is out of range (expected {range_text(hint)})"
    if len(rest) > 1 and rest[1].isdigit() and get_origin(_unwrap(hint)) is list:  # one item of a list
        index, item_hint = int(rest[1]), get_args(_unwrap(hint))[0]
        item = value[index] if isinstance(value, list) and index < len(value) else None
        return f"{section}.{name}[{index}]: expected {_one_of(item_hint)}{type_name(item_hint)}, got {item!r}"
    return f"{section}.{name}: expected {_one_of(hint)}{type_name(hint)}, got {value!r}"


def _one_of(hint: Any) -> str:
    """``one of `` before a list of allowed values."""
    return "one of " if get_origin(_unwrap(hint)) is Literal else ""


def bool_for_number(tree: dict[str, Any], sections: dict[str, type]) -> str | None:
    """The one line for a ``true``/``false`` given to a number key, else None.

    pydantic's lax mode reads booleans as 1 and 0 for int and float fields; ``train.epochs=true`` is a
    mistake, not one epoch, so it is refused as before pydantic.
    """
    for section, keys in tree.items():
        if section not in sections or not isinstance(keys, dict):
            continue
        hints = get_type_hints(sections[section], include_extras=True)
        for name, value in keys.items():
            if name not in hints:
                continue
            base = _unwrap(hints[name])
            items = value if isinstance(value, list) else [value]
            if get_origin(base) is list:
                base = _unwrap(get_args(base)[0])
            if base in (int, float) and any(isinstance(item, bool) for item in items):
                return f"{section}.{name}: expected {type_name(hints[name])}, got {value!r}"
    return None


def type_name(tp: Any) -> str:
    """An annotation in words: ``int``, ``'sgd' | 'adamw'``, ``list of float or null``."""
    origin = get_origin(tp)
    if origin is Annotated:
        return type_name(get_args(tp)[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {type_name(get_args(tp)[0])}"
    if origin is dict or tp is dict:
        return "a mapping (YAML such as '{r: 16}')"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


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


def _as_declared(value: Any, hint: Any) -> Any:
    """``value`` as the field would hold it: an int where a float is declared reads ``1.0``."""
    hint = _unwrap(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if get_origin(hint) is list and isinstance(value, list):
        return [_as_declared(item, get_args(hint)[0]) for item in value]
    return value


def _unwrap(hint: Any) -> Any:
    """The annotation without its bounds and without ``Optional``."""
    hint = _unwrap_optional(hint)
    return _unwrap(get_args(hint)[0]) if get_origin(hint) is Annotated else hint


def _unwrap_optional(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        fitting = [arg for arg in get_args(hint) if arg is not type(None)]
        return fitting[0] if len(fitting) == 1 else Any
    return hint


def _constraints(metadata: tuple[Any, ...]) -> list[Any]:
    """The annotated-types constraints in ``Annotated`` metadata (``Interval``/``Len`` unpacked)."""
    found: list[Any] = []
    for item in metadata:
        if isinstance(item, annotated_types.GroupedMetadata):
            found.extend(item)
        elif isinstance(item, annotated_types.BaseMetadata):
            found.append(item)
    return found


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
    most = [c.max_length for c in constraints if isinstance(c, annotated_types.MaxLen)]
    if sizes:
        parts.append(f"{sizes[0]} values" if most and most[0] == sizes[0] else f"at least {sizes[0]} value(s)")
    parts += [(c.func.__doc__ or c.func.__name__).strip() for c in constraints if isinstance(c, annotated_types.Predicate)]
    return ", ".join(parts)
