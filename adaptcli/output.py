"""The one path library messages take: ``echo`` for progress lines, ``warn`` for notes and warnings,
``bars`` for whether progress bars are drawn (``--no-progress``: False).

The CLI keeps the defaults (stdout and stderr, looked up at each call so that captured streams
work); ``prepare``, ``suite`` and ``demo`` pass their own callbacks, and non-main processes
pass :meth:`Output.silent`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

Line = Callable[[str], None]


def to_stdout(line: str) -> None:
    print(line, file=sys.stdout)


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def nowhere(line: str) -> None:
    """Drop ``line`` (the callback of a process that does not report)."""


@dataclass(frozen=True)
class Output:
    """Where a library function reports: ``echo`` (stdout by default), ``warn`` (stderr by default), and
    whether it draws progress bars (on stderr)."""

    echo: Line = to_stdout
    warn: Line = to_stderr
    bars: bool = True

    @classmethod
    def silent(cls) -> Output:
        return cls(echo=nowhere, warn=nowhere, bars=False)

    def main_only(self, is_main: bool) -> Output:
        """This output on the main process, silence on the others."""
        return self if is_main else Output.silent()
