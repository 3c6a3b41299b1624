"""``adaptcli inspect-params``: exact parameter counts of a method on a backbone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import user_errors

PANEL = "Getting started"


def register(app: typer.Typer) -> None:
    @app.command("inspect-params", rich_help_panel=PANEL)
    @user_errors
    def inspect_params(
        model: Annotated[str, typer.Option("--model", help="Backbone name: a timm model or video_vit_*.")],
        method: Annotated[str, typer.Option("--method", help="adaptformer, arc, arc_att, vpt_shallow, vpt_deep, linear or full.")],
        num_classes: Annotated[int, typer.Option("--num-classes", min=1, help="Classes of the target task.")],
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Method or model option, e.g. --set method.mid_dim=16 (repeatable).")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Local weights to load (random weights otherwise).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    ) -> None:
        """Count backbone, method and head parameters; nothing is downloaded.

        Example: adaptcli inspect-params --model vit_base_patch16_224 --method adaptformer --num-classes 174
        """
        from adaptcli.config import resolve

        overrides = [f"model.name={model}", *(set_ or [])]
        if checkpoint is not None:
            overrides.append(f"model.checkpoint={checkpoint}")
        config = resolve(None, method=method, overrides=overrides)

        from adaptcli.report import inspect_report, render_table

        report = inspect_report(config, num_classes)
        typer.echo(json.dumps(report, indent=2) if as_json else render_table(report))
