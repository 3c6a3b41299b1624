"""The Typer application: global options and command registration."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from adaptcli.cli import (
    config_cmd,
    demo_cmd,
    env_cmd,
    eval_cmd,
    export_cmd,
    finetune_cmd,
    inspect_cmd,
    predict_cmd,
    prepare_cmd,
    report_cmd,
    suite_cmd,
)
from adaptcli.cli.choices import app_help
from adaptcli.cli.help_words import PlainHelpCommand, PlainHelpGroup

app = typer.Typer(
    name="adaptcli",
    cls=PlainHelpGroup,
    help=app_help(),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"adaptcli {version('adaptcli')}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    ctx.ensure_object(dict)["debug"] = debug


for module in (prepare_cmd, finetune_cmd, eval_cmd, export_cmd, predict_cmd, suite_cmd, report_cmd, inspect_cmd,
               config_cmd, env_cmd, demo_cmd):
    module.register(app)
for command in app.registered_commands:  # --help names values by what to type (help_words.py)
    if command.cls in (None, TyperCommand):
        command.cls = PlainHelpCommand
