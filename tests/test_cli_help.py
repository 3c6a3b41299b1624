"""Every command's --help names values by what to type: no ``<bool>`` beside a flag, no Python type
(``<str>``, ``<list[str]>``, ``<int range>``, ``<path>``) as a metavar (issue 32 item 9), and every
command that draws progress bars takes --no-progress."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from adaptcli.cli import app

PYTHON_TYPES = re.compile(r"<(bool|str|int|float|path|Path|list\[[^\]]*\]|tuple\[[^\]]*\]|"
                          r"int range|float range|datetime|uuid)>|Optional\[|NoneType|<class '")
#: Commands that draw progress bars (prepare, finetune, eval, predict, suite, demo).
WITH_BARS = ("prepare", "finetune", "eval", "predict", "suite", "demo")


def commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def help_text(*names: str) -> str:
    result = CliRunner().invoke(app, [*names, "--help"], env={"COLUMNS": "240", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", ["", *commands()])
def test_help_shows_no_python_types(name):
    text = help_text(*([name] if name else []))
    assert "<bool>" not in text and "BOOLEAN" not in text
    found = PYTHON_TYPES.search(text)
    assert found is None, f"adaptcli {name} --help shows {found.group(0)!r}"


def test_value_options_name_what_to_type():
    text = help_text("finetune")
    for option, word in (("--set", "KEY=VALUE"), ("--recipe", "NAME|FILE"), ("--data", "DIR")):
        assert re.search(rf"{re.escape(option)}\s+{re.escape(word)}\s", text), option
    assert re.search(r"--dry-run\s{3,}Print the plan", text)  # a flag: nothing between it and its help
    assert re.search(r"--sweep\s+KEY=V1,V2,\.\.\.\s", help_text("suite"))


@pytest.mark.parametrize("name", WITH_BARS)
def test_every_command_with_a_bar_takes_no_progress(name):
    assert "--no-progress" in help_text(name)
