"""``adaptcli demo``: the whole chain on synthetic data, no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptcli.cli.errors import user_errors

PANEL = "Getting started"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL, help=demo_help())
    @user_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", help="Folder for data, runs and results.")] = Path("demo-out"),
        quick: Annotated[bool, typer.Option("--quick", help="A 1-2 minute smoke version (fewer clips and epochs; noisy numbers).")] = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bars (on stderr).")] = True,
    ) -> None:
        from adaptcli.demo.pipeline import DemoSettings, run_demo

        settings = DemoSettings.quick_run() if quick else DemoSettings.default()
        run_demo(out, settings, echo=lambda line: typer.echo(line), bars=progress)


def demo_help() -> str:
    """The command's help, naming every method the demo runs."""
    from adaptcli.demo import METHODS as methods

    return (f"Prepare, pre-train, adapt with {len(methods)} methods, evaluate, export, and print the table.\n\n"
            "Writes two synthetic datasets (shape images; motion clips in the SSv2 layout), pre-trains a "
            f"small ViT on the images, adapts it to the clips with {', '.join(methods)}, and writes "
            "results.md, results.json and top1_vs_params.png into --out.\n\n"
            "Example: adaptcli demo --out demo-out")
