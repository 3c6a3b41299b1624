"""Turn user errors into one-line messages with exit code 2 (``--debug`` shows the traceback)."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click
import typer

from adaptcli.errors import AdaptError

F = TypeVar("F", bound=Callable[..., Any])


def debug_enabled() -> bool:
    """``adaptcli --debug``: read from the root Typer context (set by the app's callback)."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and isinstance(root.obj, dict) and root.obj.get("debug"))


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

