"""``--set KEY=VALUE``: dotted keys and YAML values laid over a recipe's sections."""

from __future__ import annotations

from typing import Any

import yaml

from adaptcli.config.messages import unknown_key_message
from adaptcli.errors import ConfigError
from adaptcli.files import UnboundedYaml, parse_yaml


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as YAML (``3`` is an int, ``[1,2]`` a list, ``null`` None)."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE (for example train.epochs=3), got '{text}'")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    except UnboundedYaml as exc:
        raise ConfigError(f"--set {key}: the value is refused: {exc}") from None
    return key, value


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def set_dotted(tree: dict[str, Any], key: str, value: Any, valid_keys: list[str]) -> None:
    """Set ``section.name`` in ``tree``, refusing a key that is not in ``valid_keys`` with the nearest one."""
    if key not in valid_keys:
        raise ConfigError(unknown_key_message(key, valid_keys))
    section, name = key.split(".")
    tree.setdefault(section, {})
    if not isinstance(tree[section], dict):
        raise ConfigError(unknown_key_message(key, valid_keys))
    tree[section][name] = value
