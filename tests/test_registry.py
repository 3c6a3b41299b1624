"""The one registry mechanism (adaptcli/registry.py) and the CLI help texts read from it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from adaptcli.errors import AdaptError, ConfigError
from adaptcli.registry import Registry


@dataclass(frozen=True)
class Entry:
    name: str
    summary: str
    order: int = 100


def test_names_in_order_then_by_name_with_help():
    registry: Registry[Entry] = Registry("widget", lambda e: e.summary, order=lambda e: e.order)
    for entry in (Entry("zeta", "last", 30), Entry("beta", "b", 10), Entry("alpha", "a", 10)):
        registry.register(entry)
    assert registry.names() == ("alpha", "beta", "zeta")
    assert registry.help() == "alpha: a; beta: b; zeta: last"
    assert registry.get("zeta").summary == "last"


def test_unknown_name_is_one_line_with_the_closest_name():
    registry: Registry[Entry] = Registry("widget", lambda e: e.summary, error=ConfigError)
    registry.register(Entry("adaptformer", "x"))
    registry.register(Entry("arc", "y"))
    with pytest.raises(ConfigError, match=r"^unknown widget 'adaptfromer' \(did you mean 'adaptformer'\?\): "
                                          r"choose one of adaptformer, arc$"):
        registry.get("adaptfromer")


def test_a_second_different_entry_of_a_name_is_refused():
    registry: Registry[Entry] = Registry("widget", lambda e: e.summary)
    registry.register(Entry("a", "one"))
    registry.register(Entry("a", "one"))  # the same entry again (a module imported twice) is harmless
    with pytest.raises(RuntimeError, match="widget 'a' is registered twice"):
        registry.register(Entry("a", "two"))


def test_discovery_imports_every_module_or_subpackage_of_the_folder(tmp_path, monkeypatch):
    import importlib

    flat, nested = tmp_path / "toy_flat", tmp_path / "toy_nested"
    for folder in (flat, nested / "one", nested / "two"):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    (tmp_path / "toy_registries.py").write_text(
        "from adaptcli.registry import Registry\n"
        "FLAT = Registry('widget', lambda e: e, package='toy_flat')\n"
        "NESTED = Registry('widget', lambda e: e, package='toy_nested', inside='config')\n")
    registration = "from tests.test_registry import Entry\nfrom toy_registries import {0}\n{0}.register(Entry('{1}', ''))\n"
    (flat / "first.py").write_text(registration.format("FLAT", "first"))
    (flat / "second.py").write_text(registration.format("FLAT", "second"))
    (nested / "one" / "config.py").write_text(registration.format("NESTED", "one"))
    (nested / "two" / "config.py").write_text(registration.format("NESTED", "two"))
    (nested / "loose.py").write_text("raise AssertionError('not a sub-package: never imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registries = importlib.import_module("toy_registries")
    assert registries.FLAT.names() == ("first", "second")
    assert registries.NESTED.names() == ("one", "two")
    with pytest.raises(AdaptError, match="unknown widget 'three'"):
        registries.NESTED.get("three")


def _help(*args: str) -> str:
    from adaptcli.cli import app

    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())  # help panels wrap inside box lines


def test_top_level_help_names_every_method():
    from adaptcli.methods.registry import method_names

    text = _help()
    assert all(name in text for name in method_names())


def test_demo_help_names_every_method_it_runs():
    from adaptcli.demo.pipeline import DemoSettings

    text = _help("demo")
    for settings in (DemoSettings.default(), DemoSettings.quick_run()):
        assert all(name in text for name in settings.methods)


def test_suite_takes_every_registered_benchmark_and_refuses_others_in_one_line(tmp_path):
    from adaptcli.cli import app
    from adaptcli.protocols.benchmarks import BENCHMARKS

    text = _help("suite")
    assert all(f"{bench.name}: {bench.summary}" in text for bench in BENCHMARKS.entries())
    result = CliRunner().invoke(app, ["suite", "vtb", "--method", "arc", "--data", str(tmp_path),
                                      "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output.strip() == "error: unknown benchmark 'vtb' (did you mean 'vtab'?): choose one of vtab, fgvc"
