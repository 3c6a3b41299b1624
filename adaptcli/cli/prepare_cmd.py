"""``adaptcli prepare``: datasets into WebDataset shards of decoded frames."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import user_errors

PANEL = "Data"


def _size(num: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num < 1024 or unit == "GB":
            return f"{num:.1f} {unit}" if unit != "B" else f"{int(num)} B"
        num /= 1024
    return f"{num:.1f} TB"  # pragma: no cover


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def prepare(
        dataset: Annotated[str, typer.Argument(help="ssv2, hmdb51, vtab, cifar100, svhn, food101, fgvc, imagefolder or videofolder.")],
        src: Annotated[Path, typer.Argument(help="The dataset's root folder, as downloaded.")],
        shards: Annotated[Path, typer.Option("--shards", help="Output folder for the shards and dataset.json.")],
        splits: Annotated[Optional[str], typer.Option("--splits", help="Comma-separated splits (default: all the dataset has).")] = None,
        short_side: Annotated[int, typer.Option("--short-side", min=16, help="Video frames: shrink so the short side is at most this (never up-scales).")] = 256,
        workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="Decoding processes (default: CPU count, at most 8). Does not change the output.")] = None,
        samples_per_shard: Annotated[Optional[int], typer.Option("--samples-per-shard", min=1, help="Samples per shard file (default 200 clips or 2000 images).")] = None,
        quality: Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG quality of video frames.")] = 90,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a shard folder that holds another dataset or other settings.")] = False,
        labels: Annotated[Optional[Path], typer.Option("--labels", help="ssv2: folder of the label JSON files.")] = None,
        videos: Annotated[Optional[Path], typer.Option("--videos", help="ssv2: folder of the <id>.webm clips.")] = None,
        split_dir: Annotated[Optional[Path], typer.Option("--split-dir", help="hmdb51: folder of <class>_test_split<k>.txt.")] = None,
        split_id: Annotated[int, typer.Option("--split-id", min=1, max=3, help="hmdb51: official split 1, 2 or 3.")] = 1,
        task: Annotated[Optional[str], typer.Option("--task", help="vtab: one task (default: every task found, one subfolder each).")] = None,
        fgvc_dataset: Annotated[Optional[str], typer.Option("--dataset", help="fgvc: CUB_200_2011, nabirds, OxfordFlower, Stanford-dogs or Stanford-cars.")] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    ) -> None:
        """Decode a dataset once into WebDataset shards that training streams.

        Example: adaptcli prepare ssv2 ~/data/ssv2 --shards ~/shards/ssv2
        """
        prepare_dataset(dataset, src, shards, splits=splits, short_side=short_side, workers=workers,
                        samples_per_shard=samples_per_shard, quality=quality, overwrite=overwrite,
                        labels=labels, videos=videos, split_dir=split_dir, split_id=split_id, task=task,
                        fgvc_dataset=fgvc_dataset, progress=progress)


def prepare_dataset(
    dataset: str,
    src: Path,
    shards: Path,
    *,
    splits: Optional[str] = None,
    short_side: int = 256,
    workers: Optional[int] = None,
    samples_per_shard: Optional[int] = None,
    quality: int = 90,
    overwrite: bool = False,
    labels: Optional[Path] = None,
    videos: Optional[Path] = None,
    split_dir: Optional[Path] = None,
    split_id: int = 1,
    task: Optional[str] = None,
    fgvc_dataset: Optional[str] = None,
    progress: bool = True,
) -> list:
    """What ``adaptcli prepare`` does (the command and the demo call this); returns the results."""
    from adaptcli.data.prepare import PrepareOptions, prepare as run_prepare
    from adaptcli.data.sources.registry import SourceOptions, list_dataset

    split_list = [s.strip() for s in splits.split(",") if s.strip()] if splits else None
    opts = SourceOptions(splits=split_list, labels=labels, videos=videos, split_dir=split_dir,
                         split_id=split_id, task=task, fgvc_dataset=fgvc_dataset)
    listings = list_dataset(dataset, src, opts)
    if dataset == "vtab" and task is None:
        from adaptcli.data.sources.lists import VTAB_TASKS

        absent = [t for t in VTAB_TASKS if t not in {name for name, _ in listings}]
        if absent:
            typer.echo(f"note: {len(absent)} of the 19 VTAB tasks are not under {src}: {', '.join(absent)}", err=True)
    n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    results = []
    for sub, listing in listings:
        out = shards / sub if sub else shards
        result = run_prepare(listing, out, PrepareOptions(
            short_side=short_side, quality=quality, samples_per_shard=samples_per_shard,
            workers=n_workers, overwrite=overwrite, progress=progress))
        shard_count = sum(len(info.shards) for info in result.manifest.splits.values())
        reused = f", {result.reused_shards} reused from an earlier run" if result.reused_shards else ""
        typer.echo(f"{result.manifest.dataset}{'/' + sub if sub else ''}: wrote {result.written} samples "
                   f"in {shard_count} shards to {out}, skipped {result.skipped}, "
                   f"{result.seconds:.1f} s, {_size(result.bytes)} on disk{reused}")
        if result.skipped:
            typer.echo(f"warning: skipped {result.skipped} samples (see {out / 'dataset.json'} \"skipped\")", err=True)
        results.append(result)
    return results
