"""``adaptcli eval``: accuracy of a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import user_errors

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
        from adaptcli.engine.finetune import evaluate_run, json_dump

        metrics = evaluate_run(run, data=data, split=split, views=views)
        from adaptcli.engine.distributed import partial_state

        if not partial_state().is_main_process:
            return
        if as_json:
            typer.echo(json_dump(metrics))
            return
        typer.echo(
            f"{metrics['split']}: top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  "
            f"mean-class {metrics['mean_class_acc']:.2f}  ({metrics['samples']} samples, views {metrics['views']})"
        )
        typer.echo(f"written: {run / 'eval.json'}")
