"""``adaptcli prepare``: datasets into WebDataset shards of decoded frames."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptcli.cli.errors import not_built, user_errors

PANEL = "Data"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def prepare(
        dataset: Annotated[str, typer.Argument(help="ssv2, hmdb51, vtab, cifar100, svhn, food101, fgvc, imagefolder or videofolder.")],
        src: Annotated[Path, typer.Argument(help="The dataset's root folder, as downloaded.")],
        shards: Annotated[Path, typer.Option("--shards", help="Output folder for the shards and dataset.json.")],
    ) -> None:
        """Decode a dataset once into WebDataset shards that training streams.

        Example: adaptcli prepare ssv2 ~/data/ssv2 --shards ~/shards/ssv2
        """
        raise not_built("prepare", "data issue")
