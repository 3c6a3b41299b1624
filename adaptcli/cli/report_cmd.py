"""``adaptcli report``: runs and suites in one table (Markdown, CSV or JSON), and a plot."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import user_errors

PANEL = "Protocols"


class Format(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def report(
        paths: Annotated[list[Path], typer.Argument(help="Run folders (finetune --out) and suite folders (suite --out).")],
        fmt: Annotated[Format, typer.Option("--format", help="Table format.")] = Format.md,
        out: Annotated[Optional[Path], typer.Option("--out", help="Write the table to this file instead of printing it.")] = None,
        plot: Annotated[Optional[Path], typer.Option("--plot", help="Draw accuracy against trainable parameters (log x) into this PNG; with --against, ours and the paper's score per task.")] = None,
        against: Annotated[Optional[str], typer.Option("--against", metavar="PAPER", help="Compare each suite (and run folders, by dataset) with this paper's published table (per task, per group, average), each number with its source: adaptformer, arc, pace, vpetl.")] = None,
        row: Annotated[Optional[str], typer.Option("--row", metavar="TABLE/ROW", help="With --against: the paper's row (default: the one row of our method among the rows that share our tasks or benchmark).")] = None,
        tolerance: Annotated[Optional[float], typer.Option("--tolerance", metavar="POINTS", help="With --against: flag differences larger than this, in points [default: 1].")] = None,
    ) -> None:
        """One row per run (parameters, val/test top-1, time, speed, memory); suites side by side with both averages.

        Example: adaptcli report runs/* suites/vtab-arc suites/vtab-adaptformer --plot top1_vs_params.png

        Against a paper: adaptcli report suites/vtab-adaptformer --against vpetl --plot vs_paper.png
        """
        from adaptcli.errors import AdaptError
        from adaptcli.io import write_text
        from adaptcli.ownership import claim_file, record_file
        from adaptcli.protocols.report import plot as draw
        from adaptcli.protocols.report import render
        from adaptcli.protocols.report import report as build

        for path, option in ((out, "--out"), (plot, "--plot")):
            if path is not None:
                claim_file(path, option)
        if out is not None and plot is not None and out.resolve() == plot.resolve():
            raise AdaptError(f"--out and --plot name the same file {out}; give each its own")
        data = build(list(paths), against=against, row=row, tolerance=tolerance)
        text = render(data, fmt.value)
        if out is not None:
            write_text(out, text)
            record_file(out)
            typer.echo(f"written: {out}")
        else:
            typer.echo(text, nl=False)
        if plot is not None:
            draw(data, plot)
            record_file(plot)
            typer.echo(f"plot: {plot}")
