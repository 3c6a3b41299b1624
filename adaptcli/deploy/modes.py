"""What an export holds, defined once: its CLI flag, header format, self-check name and help. Torch-free."""

from __future__ import annotations

from enum import Enum

from adaptcli.errors import AdaptError


class ExportMode(str, Enum):
    """An export mode; its value is the CLI's flag without dashes (``--merge``)."""

    header_format: str  # the ``format`` field of an adaptcli safetensors header
    check: str  # the name of the self-check every export of this mode passes
    help: str  # the CLI flag's help

    def __new__(cls, value: str, header_format: str, check: str, help: str) -> "ExportMode":
        member = str.__new__(cls, value)
        member._value_ = value
        member.header_format = header_format
        member.check = check
        member.help = help
        return member

    MERGE = ("merge", "adaptcli.merged/1", "merge check",
             "Fold the method into the backbone's own architecture")
    FULL = ("full", "adaptcli.full/1", "reload check", "The whole adapted model plus its configuration.")
    ADAPTER_ONLY = ("adapter-only", "adaptcli.adapter/1", "adapter round-trip check",
                    "Only the trained tensors plus configuration.")

    @property
    def flag(self) -> str:
        return f"--{self.value}"

    @classmethod
    def parse(cls, name: str) -> "ExportMode":
        """The mode called ``name`` (``merge``, ``full``, ``adapter-only``), or a one-line error."""
        try:
            return cls(name)
        except ValueError:
            raise AdaptError(f"unknown export mode '{name}': choose one of "
                             f"{', '.join(mode.value for mode in cls)}") from None

    @classmethod
    def from_header(cls, header_format: object) -> "ExportMode | None":
        """The mode whose files carry ``header_format`` (None: not an adaptcli export)."""
        return next((mode for mode in cls if mode.header_format == header_format), None)

    def __str__(self) -> str:
        return self.value
