"""Shell completion of the CLI's names, from the registries (``adaptcli --install-completion``).

Each function takes what the user typed so far and returns ``(name, one-line help)`` pairs that start
with it; the registries import nothing heavy, so completing stays fast.
"""

from __future__ import annotations


def _matching(pairs: list[tuple[str, str]], incomplete: str) -> list[tuple[str, str]]:
    return [(name, text) for name, text in pairs if name.startswith(incomplete)]


def complete_method(incomplete: str) -> list[tuple[str, str]]:
    """Registered methods with their summaries."""
    from adaptcli.methods.registry import all_methods

    return _matching([(spec.name, spec.summary) for spec in all_methods()], incomplete)


def complete_recipe(incomplete: str) -> list[tuple[str, str]]:
    """Shipped recipe names (a YAML path completes as a file name in the shell)."""
    from adaptcli.config import shipped_recipes

    return _matching([(name, f"recipes/{path.name}") for name, path in sorted(shipped_recipes().items())], incomplete)


def complete_dataset(incomplete: str) -> list[tuple[str, str]]:
    """Datasets ``prepare`` knows."""
    from adaptcli.data.prepare.sources.registry import SOURCES

    return _matching([(name, SOURCES.get(name).help) for name in SOURCES.names()], incomplete)


def complete_benchmark(incomplete: str) -> list[tuple[str, str]]:
    """Benchmarks ``suite`` runs."""
    from adaptcli.protocols.benchmarks import BENCHMARKS

    return _matching([(name, BENCHMARKS.get(name).summary) for name in BENCHMARKS.names()], incomplete)


__all__ = ["complete_benchmark", "complete_dataset", "complete_method", "complete_recipe"]
