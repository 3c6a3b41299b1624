"""``adaptcli demo``: the whole chain on synthetic data, no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptcli.cli.errors import not_built, user_errors

PANEL = "Getting started"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", help="Folder for data, runs and results.")] = Path("demo-out"),
        quick: Annotated[bool, typer.Option("--quick", help="A 2-minute smoke version.")] = False,
    ) -> None:
        """Prepare, adapt with every method, evaluate, export, and print the table.

        Example: adaptcli demo --out demo-out
        """
        raise not_built("demo", "demo issue")
