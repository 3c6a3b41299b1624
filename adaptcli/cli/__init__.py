"""The ``adaptcli`` command line (Typer). Heavy imports (torch, timm) happen inside command bodies."""

from __future__ import annotations

from adaptcli.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
