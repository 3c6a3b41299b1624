"""``adaptcli eval``: accuracy of a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import not_built, user_errors

PANEL = "Training"


def register(app: typer.Typer) -> None:
    @app.command("eval", rich_help_panel=PANEL)
    @user_errors
    def evaluate(
        run: Annotated[Path, typer.Option("--run", help="A run folder written by 'adaptcli finetune'.")],
        data: Annotated[Optional[Path], typer.Option("--data", help="Shards to evaluate on (default: the run's).")] = None,
        split: Annotated[str, typer.Option("--split", help="Split to evaluate.")] = "test",
        views: Annotated[Optional[str], typer.Option("--views", help="Video multi-view testing CLIPSxCROPS, e.g. 2x3.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object.")] = False,
    ) -> None:
        """Top-1, top-5 and per-class accuracy of a run on a split.

        Example: adaptcli eval --run runs/ssv2-adaptformer --split validation --views 2x3
        """
        raise not_built("eval", "engine issue")
