"""The method and export tables in docs/ say what the registry and the option classes say."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from adaptcli.methods.registry import all_methods, method_spec

DOCS = Path(__file__).resolve().parent.parent / "docs"


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every Markdown table row whose first cell matches ``first_cell`` (a regex)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    return [row for row in rows if re.fullmatch(first_cell, row[0])]


def test_export_merge_row_names_every_mergeable_method():
    (row,) = table_rows((DOCS / "export.md").read_text(), "`--merge`")
    named = set(re.findall(r"[a-z_][a-z_0-9]*", re.sub(r"\(.*?\)", "", row[1])))
    assert named == {spec.name for spec in all_methods() if spec.mergeable}


def option_defaults_in_docs() -> list[tuple[str, str, str]]:
    found = []
    for row in table_rows((DOCS / "methods.md").read_text(), "`[a-z_]+`"):
        method = row[0].strip("`")
        for key, value in re.findall(r"(\w+)=(\S+?)(?=[\s`]|$)", row[1].split("`")[1] if "`" in row[1] else ""):
            found.append((method, key, value))
    return found


@pytest.mark.parametrize("method,key,value", option_defaults_in_docs())
def test_methods_table_gives_the_option_defaults(method, key, value):
    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
                for f in dataclasses.fields(method_spec(method).options)}
    assert key in defaults, f"docs/methods.md: {method} has no option '{key}'"
    assert yaml.safe_load(value) == defaults[key] or value == str(defaults[key]), \
        f"docs/methods.md gives {method} {key}={value}; the default is {defaults[key]!r}"


def test_readme_names_the_versions_constraints_lowest_pins():
    """The README's `make test-lowest` sentence names each version exactly as constraints-lowest.txt pins it."""
    root = DOCS.parent
    pins = dict(line.split("==") for line in (root / "constraints-lowest.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    readme = " ".join((root / "README.md").read_text().split())
    sentence = readme[readme.index("`make test-lowest` runs it on the lowest ones"):].split("`constraints-lowest.txt`")[0]
    named = re.findall(r"([a-z][a-z0-9_-]*) (\d+(?:\.\d+)+)", sentence)
    assert len(named) >= 5, sentence
    assert {name: version for name, version in named} == {name: pins[name] for name, _ in named}
