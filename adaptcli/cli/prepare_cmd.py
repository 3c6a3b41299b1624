"""``adaptcli prepare``: datasets into WebDataset shards of decoded frames."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.completion import complete_dataset
from adaptcli.cli.errors import user_errors
from adaptcli.data.prepare.sources.registry import dataset_help

PANEL = "Data"


def _stderr(line: str) -> None:
    typer.echo(line, err=True)


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def prepare(
        dataset: Annotated[str, typer.Argument(help=dataset_help(), autocompletion=complete_dataset)],
        src: Annotated[Path, typer.Argument(help="The dataset's root folder, as downloaded.")],
        shards: Annotated[Path, typer.Option("--shards", help="Output folder for the shards and dataset.json.")],
        splits: Annotated[Optional[str], typer.Option("--splits", help="Comma-separated splits (default: all the dataset has).")] = None,
        short_side: Annotated[int, typer.Option("--short-side", min=16, help="Video frames: shrink so the short side is at most this (never up-scales).")] = 256,
        workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Decoding processes (default: the CPU cores this process may use; at most those, or 8). Does not change the output.")] = None,
        samples_per_shard: Annotated[Optional[int], typer.Option("--samples-per-shard", min=1, help="Samples per shard file (default 200 clips or 2000 images).")] = None,
        quality: Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG quality of video frames.")] = 90,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a shard folder that holds another dataset or other settings.")] = False,
        labels: Annotated[Optional[Path], typer.Option("--labels", help="ssv2: folder of the label JSON files; videolist: the class names of integer labels, one per line (mmaction2's label_map_k400.txt).")] = None,
        videos: Annotated[Optional[Path], typer.Option("--videos", help="ssv2: folder of the <id>.webm clips; kinetics: folder of the clips (default: under SRC); videolist: the folder relative list paths start from.")] = None,
        images: Annotated[Optional[Path], typer.Option("--images", help="nuswide: folder of the images (default ROOT/Flickr).")] = None,
        split_dir: Annotated[Optional[Path], typer.Option("--split-dir", help="hmdb51: folder of <class>_test_split<k>.txt (testTrainMulti_7030_splits); ucf101: ucfTrainTestlist (default: in or beside SRC).")] = None,
        split_id: Annotated[int, typer.Option("--split-id", min=1, max=3, help="hmdb51, ucf101: official split 1, 2 or 3.")] = 1,
        task: Annotated[Optional[str], typer.Option("--task", help="vtab: one task (default: every task found, one subfolder each); V-PETL's names (cifar100) work too.")] = None,
        fgvc_dataset: Annotated[Optional[str], typer.Option("--dataset", help="fgvc: CUB_200_2011, nabirds, OxfordFlower, Stanford-dogs or Stanford-cars.")] = None,
        allow_empty_classes: Annotated[bool, typer.Option("--allow-empty-classes", help="Keep a class whose folder holds no usable file (refused by default).")] = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
        fps: Annotated[Optional[float], typer.Option("--fps", min=0.1, help="Video: store frames at this rate (a source at or below it keeps its own); stride sampling still spans the same seconds.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the projected shard size and CPU time, write nothing.")] = False,
        ignore_space: Annotated[bool, typer.Option("--ignore-space", help="Write even when the projected size exceeds the free space.")] = False,
        part: Annotated[Optional[str], typer.Option("--part", metavar="K/N", help="Write only part K of N (1 <= K <= N <= 1000), e.g. one per machine or Slurm array task; the last part to finish merges them (see docs/data.md).")] = None,
        merge: Annotated[bool, typer.Option("--merge", help="Merge the parts of --part runs (copied into --shards) into one dataset.json; use the parts' command with --merge for --part.")] = False,
    ) -> None:
        """Decode a dataset once into WebDataset shards that training streams.

        Example: adaptcli prepare ssv2 ~/data/ssv2 --shards ~/shards/ssv2
        """
        from adaptcli.data.prepare.parts import part_run
        from adaptcli.data.prepare.prepare import prepare_dataset

        run = part_run(part, merge, overwrite, typer.echo)
        prepare_dataset(dataset, src, shards, splits=splits, short_side=short_side, workers=workers,
                        samples_per_shard=samples_per_shard, quality=quality, overwrite=overwrite,
                        labels=labels, videos=videos, images=images, split_dir=split_dir, split_id=split_id, task=task,
                        fgvc_dataset=fgvc_dataset, allow_empty_classes=allow_empty_classes, progress=progress,
                        fps=fps, dry_run=dry_run, ignore_space=ignore_space, echo=typer.echo, warn=_stderr, run=run)
