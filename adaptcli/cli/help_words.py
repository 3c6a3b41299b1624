"""What ``--help`` shows beside each option: a word for what to type (``DIR``, ``N``, ``KEY=VALUE``) and
nothing beside a flag.

Recent Typer prints the Python annotation there (``<bool>`` on every flag, ``<str>``, ``<list[str]>``,
``<int range>``); older Typer prints click's ``TEXT``/``PATH``. Every command is built with
:class:`PlainHelpCommand` (the group with :class:`PlainHelpGroup`), which sets each parameter's metavar
from :data:`METAVARS` (an option added later without an entry shows its own name, ``--split-id SPLIT_ID``).
"""

from __future__ import annotations

from typing import Any

import click
from typer.core import TyperCommand, TyperGroup

#: Option (or argument) name -> what its value is, as --help and the usage line show it.
METAVARS: dict[str, str] = {
    "--adapter": "FILE", "--backbone": "PATH", "--batch-size": "N", "--checkpoint": "FILE", "--data": "DIR",
    "--dataset": "NAME", "--device": "cpu|cuda", "--export": "PATH", "--format": "FORMAT", "--images": "DIR",
    "--labels": "DIR", "--method": "METHOD", "--model": "NAME", "--num-classes": "N", "--out": "PATH",
    "--plot": "FILE", "--push": "USER/NAME", "--quality": "1-100", "--recipe": "NAME|FILE", "--run": "DIR",
    "--samples-per-shard": "N", "--scores": "FILE", "--set": "KEY=VALUE", "--shards": "DIR",
    "--short-side": "PIXELS", "--split": "SPLIT", "--split-dir": "DIR", "--split-id": "1|2|3",
    "--splits": "SPLIT,...", "--sweep": "KEY=V1,V2,...", "--task": "TASK", "--tasks": "TASK,...", "--top-k": "K",
    "--videos": "DIR", "--views": "CLIPSxCROPS", "--weights": "WHICH", "--workers": "N",
    "bench": "BENCHMARK", "dataset": "DATASET", "model": "MODEL", "paths": "PATH", "src": "SRC",
}


def _is_flag(param: click.Parameter) -> bool:
    return bool(getattr(param, "is_flag", False) or getattr(param, "count", False))


def plain_metavar(param: Any) -> None:
    """Give ``param`` the metavar --help shows: none for a flag, the table's word, or its own name."""
    if _is_flag(param):
        param.metavar = ""
    elif param.metavar is None:
        long_names = [name for name in param.opts if name.startswith("--")]
        key = long_names[0] if long_names else str(param.name)
        word = METAVARS.get(key, str(param.name).upper())
        if getattr(param, "nargs", 1) != 1 and not hasattr(param, "display_type_rich"):
            word += "..."  # older Typer leaves the mark of a repeated argument to its metavar
        param.metavar = word
    if not getattr(param, "opts", [""])[0].startswith("-") and hasattr(param, "display_type_rich"):
        # recent Typer prints an argument's annotation beside its name; the name column shows the metavar
        param.display_type_rich = lambda ctx: ""


class PlainHelpCommand(TyperCommand):
    """A Typer command whose --help names values by what to type, never by Python type."""

    def get_params(self, ctx: click.Context) -> list[Any]:
        params = super().get_params(ctx)  # its own, and --help
        for param in params:
            plain_metavar(param)
        return params


class PlainHelpGroup(TyperGroup):
    """The application group, with the same rule for its own options (--debug, --install-completion, ...)."""

    def get_params(self, ctx: click.Context) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            plain_metavar(param)
        return params


__all__ = ["METAVARS", "PlainHelpCommand", "PlainHelpGroup", "plain_metavar"]
