"""What a checkpoint load did, for the user to read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """The outcome of :func:`adaptcli.models.checkpoints.load_checkpoint`.

    ``loaded``: model keys filled from the file. ``missing``: model keys left as initialised (only
    the classifier and ``fc_norm`` may be; anything else is an error). ``unused``: file keys the
    model has no place for (decoders, mask tokens, a final norm the pooling does not use).
    ``resampled``: keys whose tensor was converted to the model's shape (position tables, patch
    kernels, an inflated image kernel). ``notes``: conversions in words.
    """

    path: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        """A few lines: format, counts, and the first keys of each list."""
        lines = [f"checkpoint {self.path}: {self.format}, {len(self.loaded)} tensors loaded"]
        for label, keys in (
            ("newly initialised", self.missing),
            ("unused", self.unused),
            ("resampled", self.resampled),
        ):
            if keys:
                lines.append(f"  {label} ({len(keys)}): {_first(keys, limit)}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _first(keys: list[str], limit: int) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
