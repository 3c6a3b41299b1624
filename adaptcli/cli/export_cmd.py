"""``adaptcli export``: deployable weights from a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptcli.cli.errors import not_built, user_errors

PANEL = "Deployment"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def export(
        run: Annotated[Path, typer.Option("--run", help="A run folder written by 'adaptcli finetune'.")],
        out: Annotated[Path, typer.Option("--out", help="The .safetensors file to write.")],
        merge: Annotated[bool, typer.Option("--merge", help="Fold linear adapters into the backbone (arc, arc_att, linear, full).")] = False,
        full: Annotated[bool, typer.Option("--full", help="The whole adapted model plus its configuration.")] = False,
        adapter_only: Annotated[bool, typer.Option("--adapter-only", help="Only the trained tensors plus configuration.")] = False,
    ) -> None:
        """Write a run's weights for deployment.

        Example: adaptcli export --run runs/dtd-arc --merge --out dtd.safetensors
        """
        raise not_built("export", "export issue")
