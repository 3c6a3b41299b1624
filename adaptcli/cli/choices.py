"""Help texts of the CLI's choices, taken from the registries (never listed by hand).

Values are validated where they are used (``config.resolve`` for methods, the registries' ``get``
for the rest), so an unknown name is the usual one-line error with the closest valid name.
"""

from __future__ import annotations

from adaptcli.deploy.formats import FORMATS
from adaptcli.methods.registry import all_methods, method_help, method_names
from adaptcli.protocols.benchmarks import BENCHMARKS


def app_help() -> str:
    """``adaptcli --help``: what it does, with every registered method."""
    return ("Adapt pre-trained Vision Transformers to new image and video tasks by training under 2% of "
            f"their parameters. Methods: {', '.join(method_names())}.\n\n"
            "Typical flow: prepare -> finetune -> eval -> export.")


def method_option_help() -> str:
    """``--method`` help: every registered method with its one-line summary."""
    return f"One of: {method_help()}."


def format_option_help() -> str:
    """``export --format`` help: every registered export format on its own line with its summary."""
    return "One of:\n\n" + FORMATS.help("\n\n")


def mergeable_methods() -> str:
    """The methods ``export --merge`` accepts, comma-separated."""
    return ", ".join(spec.name for spec in all_methods() if spec.mergeable)


def benchmark_help() -> str:
    """``suite BENCH`` help: every registered benchmark with its one line."""
    return f"One of: {BENCHMARKS.help()}."
