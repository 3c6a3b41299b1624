"""``adaptcli demo``: the whole chain on synthetic data, no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptcli.cli.errors import user_errors

PANEL = "Getting started"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", help="Folder for data, runs and results.")] = Path("demo-out"),
        quick: Annotated[bool, typer.Option("--quick", help="A 1-2 minute smoke version (fewer clips and epochs; noisy numbers).")] = False,
    ) -> None:
        """Prepare, pre-train, adapt with every method, evaluate, export, and print the table.

        Writes two synthetic datasets (shape images; motion clips in the SSv2 layout), pre-trains a
        small ViT on the images, adapts it to the clips with linear, vpt_deep, adaptformer, arc and
        full, and writes results.md, results.json and top1_vs_params.png into --out.

        Example: adaptcli demo --out demo-out
        """
        from adaptcli.demo.pipeline import DemoSettings, run_demo

        settings = DemoSettings.quick_run() if quick else DemoSettings.default()
        run_demo(out, settings, echo=lambda line: typer.echo(line))
