"""``adaptcli finetune``: train one method on prepared shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import not_built, user_errors

PANEL = "Training"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def finetune(
        method: Annotated[str, typer.Option("--method", help="adaptformer, arc, arc_att, vpt_shallow, vpt_deep, linear or full.")],
        recipe: Annotated[str, typer.Option("--recipe", help="A shipped recipe name (vtab, ssv2, quick, ...) or a YAML path.")],
        data: Annotated[Path, typer.Option("--data", help="A folder written by 'adaptcli prepare'.")],
        out: Annotated[Path, typer.Option("--out", help="The run folder to create.")],
        model: Annotated[Optional[str], typer.Option("--model", help="Backbone name (timm or video_vit_*); overrides the recipe.")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Local pre-trained weights (safetensors, .pth, .npz).")] = None,
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe key: --set train.epochs=3 (repeatable).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")] = False,
    ) -> None:
        """Adapt a backbone to a prepared dataset with one method.

        Example: adaptcli finetune --method arc --recipe vtab --data shards/dtd --out runs/dtd-arc
        """
        raise not_built("finetune", "engine issue")
