"""Help texts of the CLI's choices, taken from the registries (never listed by hand).

Values are validated where they are used (``config.resolve`` for methods), so an unknown name is
the usual one-line error with the closest valid name.
"""

from __future__ import annotations

from adaptcli.deploy.formats import export_format, format_names
from adaptcli.methods.registry import all_methods, method_help


def method_option_help() -> str:
    """``--method`` help: every registered method with its one-line summary."""
    return f"One of: {method_help()}."


def format_option_help() -> str:
    """``export --format`` help: every registered export format on its own line with its summary."""
    return "One of:\n\n" + "\n\n".join(f"{name}: {export_format(name).summary}" for name in format_names())


def mergeable_methods() -> str:
    """The methods ``export --merge`` accepts, comma-separated."""
    return ", ".join(spec.name for spec in all_methods() if spec.mergeable)
