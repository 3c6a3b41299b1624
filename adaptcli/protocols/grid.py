"""Sweep grids: ``--sweep train.lr=1e-3,1e-2`` or a recipe's ``sweep:`` section, as named points."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from adaptcli.config import parse_override, unknown_key_message, valid_keys
from adaptcli.errors import ConfigError


@dataclass(frozen=True)
class Point:
    """One sweep point: its folder name, its ``--set`` overrides and its values."""

    name: str
    values: tuple[tuple[str, Any], ...]

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={json.dumps(value)}" for key, value in self.values]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def _split_values(text: str) -> list[str]:
    """Split on commas outside brackets, so ``data.crop_scale=[0.08,1.0],[0.4,1.0]`` has two values."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_sweeps(texts: list[str], method: str) -> dict[str, list[Any]]:
    """``["train.lr=1e-3,1e-2"]`` -> ``{"train.lr": [0.001, 0.01]}``; keys are checked like ``--set``."""
    grid: dict[str, list[Any]] = {}
    keys = valid_keys(method)
    for text in texts:
        if "=" not in text:
            raise ConfigError(f"--sweep expects KEY=V1,V2,... (for example train.lr=1e-3,1e-2), got '{text}'")
        key, raw = text.split("=", 1)
        key = key.strip()
        if key not in keys:
            raise ConfigError(unknown_key_message(key, keys))
        values = [_number(parse_override(f"{key}={part}")[1]) for part in _split_values(raw)]
        if not values:
            raise ConfigError(f"--sweep {key}= has no values; give at least one, e.g. {key}=1e-3,1e-2")
        grid[key] = values
    return grid


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; a sweep value that is a number is kept as one."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _label(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "none"


def grid_points(grid: dict[str, list[Any]]) -> list[Point]:
    """Every combination, in grid order (the first key varies slowest). An empty grid is one point."""
    if not grid:
        return [Point("default", ())]
    short = [key.split(".", 1)[1] for key in grid]
    names = short if len(set(short)) == len(short) else list(grid)
    points = []
    for combo in itertools.product(*grid.values()):
        name = "_".join(f"{n}-{_label(v)}" for n, v in zip(names, combo))
        points.append(Point(name, tuple(zip(grid, combo))))
    if len({p.name for p in points}) != len(points):
        raise ConfigError("two sweep points get the same folder name; make the values distinct (e.g. 1e-3 vs 0.001)")
    return points
