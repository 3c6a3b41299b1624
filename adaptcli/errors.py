"""User-facing errors: one line that names the problem and the fix, exit code 2."""

from __future__ import annotations


class AdaptError(Exception):
    """An error caused by the user's input; the CLI prints its message and exits with code 2."""


class ConfigError(AdaptError):
    """A recipe or override that does not fit the configuration schema."""


class NotMergeableError(AdaptError):
    """The method adds a non-linear branch or extra tokens, so it cannot be folded into the backbone."""


class UnsupportedModelError(AdaptError):
    """The method cannot be applied to this backbone (for example VPT on Swin)."""


class Interrupted(Exception):
    """Training stopped on SIGTERM/SIGUSR1 after saving a checkpoint; the CLI exits with 128 + 15."""

    exit_code = 143
