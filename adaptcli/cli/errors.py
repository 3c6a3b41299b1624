"""Turn user errors into one-line messages with exit code 2 (``--debug`` shows the traceback)."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from adaptcli.errors import AdaptError

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    return os.environ.get("ADAPTCLI_DEBUG", "") not in ("", "0")


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def user_errors(func: F) -> F:
    """Decorator for command bodies: AdaptError (and a missing file) becomes a one-line error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (AdaptError, FileNotFoundError) as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            message = str(exc)
            if isinstance(exc, FileNotFoundError) and exc.filename:
                message = f"file not found: {exc.filename}"
            raise fail(message) from None

    return wrapper  # type: ignore[return-value]


def not_built(command: str, issue: str) -> typer.Exit:
    """For commands whose implementation has not landed yet."""
    return fail(f"'adaptcli {command}' is not built yet ({issue}); nothing was done")
