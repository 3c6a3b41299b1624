"""The package's import graph, read from the source: one direction, no siblings, no cycles.

Every ``import`` counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import
still couples two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "adaptcli"

#: Top to bottom. A module may import its own section and any section in a LOWER row; never a row
#: above, never a sibling in its own row. ``adaptcli/__init__.py`` and ``__main__.py`` are the
#: entry points above everything.
LAYERS: list[tuple[str, ...]] = [
    ("cli",),
    ("demo",),
    ("protocols",),  # suites over a benchmark and reports, made of engine runs
    ("deploy", "engine"),
    ("runs",),
    ("config",),
    ("methods", "data"),
    ("models",),
    ("ownership",),  # which folders and files adaptcli wrote: claim_folder, claim_file (its ledger)
    ("io", "registry"),  # files; the one registry mechanism (names, discovery, help); both raise AdaptErrors
    ("errors", "output", "files"),  # output: where library messages go; files: reads bounded to regular files
]
ENTRY_POINTS = {"adaptcli", "adaptcli.__main__"}

#: Sections where behaviour must come from the method registry's flags, never from a method's name.
NAME_FREE_SECTIONS = ("engine", "deploy", "runs", "data", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def section(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def rank(sect: str) -> int:
    for index, row in enumerate(LAYERS):
        if sect in row:
            return index
    raise AssertionError(f"section '{sect}' is not in LAYERS: add it to the table")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """adaptcli modules that ``module`` imports (a name imported from a package that is a module counts as it)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            # "from package import submodule" couples to the submodule, not to the package's __init__.
            if len(submodules) < len(node.names):
                found.add(target)
            found.update(submodules)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def test_every_section_is_in_the_layer_table():
    for module in all_modules():
        if module not in ENTRY_POINTS:
            rank(section(module))


def test_imports_run_downward_and_never_between_siblings():
    wrong = []
    for module, targets in import_graph().items():
        if module in ENTRY_POINTS:
            continue
        here = section(module)
        for target in targets:
            there = section(target)
            if target in ENTRY_POINTS:
                wrong.append(f"{module} -> {target} (the package entry point)")
            elif there != here and rank(there) <= rank(here):
                kind = "sideways" if rank(there) == rank(here) else "upward"
                wrong.append(f"{module} -> {target} ({kind}: {here} -> {there})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """The graph reader itself: a relative and an absolute upward import are both found."""
    planted = tmp_path / "mod.py"
    planted.write_text("from ..engine import trainer\nimport adaptcli.cli.app\n")
    found = imports_of("adaptcli.runs.mod", planted, {"adaptcli.engine.trainer", "adaptcli.cli.app"})
    assert found == {"adaptcli.engine.trainer", "adaptcli.cli.app"}


def _registered_methods() -> tuple[str, ...]:
    from adaptcli.methods.registry import method_names

    return method_names()


def test_no_method_name_is_tested_as_a_string_outside_methods():
    names = set(_registered_methods())
    found = []
    for module, path in all_modules().items():
        if section(module) not in NAME_FREE_SECTIONS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            for operand in [node.left, *node.comparators]:
                for const in ast.walk(operand):
                    if isinstance(const, ast.Constant) and const.value in names:
                        found.append(f"{module}:{node.lineno} compares with '{const.value}'")
    assert not found, "decide by the method's registry flags instead:\n" + "\n".join(found)


def test_every_method_folder_registers_and_has_a_row_in_the_method_table():
    from adaptcli.methods.registry import all_methods
    from tests.method_cases import METHOD_CASES

    folders = {p.parent.name for p in (PACKAGE / "methods").glob("*/config.py")}
    registered_from = {spec.implementation.split(".")[2] for spec in all_methods()}
    assert folders == registered_from
    for spec in all_methods():
        assert (PACKAGE / "methods" / spec.implementation.split(".")[2] / "method.py").is_file()
    assert {spec.name for spec in all_methods()} == {method for method, _ in METHOD_CASES}


@pytest.mark.parametrize("command", ["finetune", "inspect-params"])
def test_method_help_comes_from_the_registry(command):
    from typer.testing import CliRunner

    from adaptcli.cli import app

    result = CliRunner().invoke(app, [command, "--help"], terminal_width=400)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in _registered_methods():
        assert f"{name}:" in text, name


def test_the_layer_order_in_docs_extending_is_the_one_enforced_here():
    """docs/extending.md draws LAYERS as ``a -> {b, c} -> ...``: the same rows, in the same order."""
    import re

    text = (PACKAGE.parent / "docs" / "extending.md").read_text()
    start = text.index("The import order is enforced by `tests/test_layout.py`:")
    drawing = text[start:].split("\n\n")[1]  # the indented block after the sentence
    rows = [tuple(sorted(name.strip() for name in re.sub(r"[{}]", "", part).split(",")))
            for part in " ".join(drawing.split()).split("->")]
    assert rows == [tuple(sorted(row)) for row in LAYERS]
