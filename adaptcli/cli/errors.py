"""The one error boundary of every command: a user-facing fault becomes one line on stderr and exit
code 2 (``--debug`` shows the traceback); a run stopped by SIGTERM/SIGUSR1 exits with 143.

Faults mapped here: :class:`~adaptcli.errors.AdaptError` (bad input, damaged files, ranges), the
operating system's file errors (disk full, permission denied, read-only file system, a file where a
folder is expected and the reverse, a name too long, an existing entry), each named with its file
and the fix.
"""

from __future__ import annotations

import errno
import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click
import typer

from adaptcli.errors import AdaptError, Interrupted

F = TypeVar("F", bound=Callable[..., Any])

#: errno -> the fix printed after the system's own words.
OS_FIXES: dict[int, str] = {
    errno.ENOENT: "check the path",
    errno.ENOSPC: "the disk is full: free space or write to another disk, then run the command again",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere, then run the command again",
    errno.EACCES: "check the permissions of the path or choose another one",
    errno.EPERM: "check the permissions of the path or choose another one",
    errno.EROFS: "the file system is read-only: write to another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "a folder is where a file is expected: name a file",
    errno.ENAMETOOLONG: "choose a shorter name",
    errno.EEXIST: "remove it or choose another path",
    errno.ENOTEMPTY: "remove its contents or choose another path",
}


def debug_enabled() -> bool:
    """``adaptcli --debug``: read from the root Typer context (set by the app's callback)."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and isinstance(root.obj, dict) and root.obj.get("debug"))


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def one_line(message: str) -> str:
    """An error re-raised by a DataLoader worker carries the worker's traceback: keep its last line."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    if "Traceback" in message:
        last = lines[-1].strip()
        head, sep, rest = last.partition(": ")
        return rest if sep and (head.endswith(("Error", "Exception", "Interrupted")) or "." in head) else last
    return " ".join(line.strip() for line in lines)


def os_error_message(exc: OSError) -> str:
    """``PATH: No space left on device; the disk is full: ...``."""
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    if isinstance(exc, FileNotFoundError) and where:
        return f"file not found: {where}"
    words = exc.strerror or str(exc) or type(exc).__name__
    fix = OS_FIXES.get(exc.errno or -1, "check the path and the disk")
    return f"{where}: {words}; {fix}" if where else f"{words}; {fix}"


def user_errors(func: F) -> F:
    """Decorator for command bodies: AdaptError and OSError become a one-line error, exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Interrupted as exc:
            typer.echo(f"stopped: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except (AdaptError, OSError) as exc:
            if debug_enabled():
                traceback.print_exc(file=sys.stderr)
            message = os_error_message(exc) if isinstance(exc, OSError) else one_line(str(exc))
            raise fail(message) from None

    return wrapper  # type: ignore[return-value]
