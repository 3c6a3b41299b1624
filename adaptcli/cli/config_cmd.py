"""``adaptcli config``: the resolved configuration of a recipe, method and overrides, without training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.choices import method_option_help
from adaptcli.cli.completion import complete_method, complete_recipe
from adaptcli.cli.errors import user_errors
from adaptcli.cli.overrides import model_overrides

PANEL = "Getting started"


def register(app: typer.Typer) -> None:
    @app.command("config", rich_help_panel=PANEL)
    @user_errors
    def config(
        method: Annotated[str, typer.Option("--method", help=method_option_help(), autocompletion=complete_method)],
        recipe: Annotated[Optional[str], typer.Option("--recipe", help="A shipped recipe name (vtab, ssv2, quick, ...) or a YAML path (needed unless --schema).", autocompletion=complete_recipe)] = None,
        model: Annotated[Optional[str], typer.Option("--model", help="Backbone name; overrides the recipe.")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Local pre-trained weights.")] = None,
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe key: --set train.epochs=3 (repeatable).")] = None,
        schema: Annotated[bool, typer.Option("--schema", help="Print the JSON schema of a recipe for --method instead (keys, types, ranges, defaults).")] = False,
    ) -> None:
        """Print the configuration finetune would run (recipe + method defaults + --set), as YAML.

        The output is a recipe: save it and pass it back with --recipe FILE (to finetune or suite: it keeps
        the recipe's sweep grid and per-task settings for the method).

        Example: adaptcli config --recipe vtab --method lora --set method.r=4 > my-recipe.yaml

        Example: adaptcli config --method lora --schema > recipe.schema.json
        """
        from adaptcli.config import json_schema, saved_recipe
        from adaptcli.errors import AdaptError

        if schema:
            import json

            typer.echo(json.dumps(json_schema(method), indent=2))
            return
        if recipe is None:
            raise AdaptError("config needs --recipe NAME_OR_FILE (or --schema for the JSON schema)")

        import yaml

        saved = saved_recipe(recipe, method=method, overrides=model_overrides(model, checkpoint, set_))
        typer.echo(yaml.safe_dump(saved, sort_keys=False).rstrip("\n"))
