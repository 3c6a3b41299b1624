"""``adaptcli eval``: accuracy of a finished run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.errors import user_errors

PANEL = "Training"


def register(app: typer.Typer) -> None:
    @app.command("eval", rich_help_panel=PANEL)
    @user_errors
    def evaluate(
        run: Annotated[Optional[Path], typer.Option("--run", help="A run folder written by 'adaptcli finetune'.")] = None,
        data: Annotated[Optional[Path], typer.Option("--data", help="Shards to evaluate on (default: the run's).")] = None,
        split: Annotated[str, typer.Option("--split", help="Split to evaluate.")] = "test",
        views: Annotated[Optional[str], typer.Option("--views", help="Video multi-view testing CLIPSxCROPS, e.g. 2x3.")] = None,
        adapter: Annotated[Optional[Path], typer.Option("--adapter", help="An adapter-only export to evaluate instead of a run (with --checkpoint and --data).")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Backbone weights for --adapter (any layout finetune accepts).")] = None,
        scores: Annotated[Optional[Path], typer.Option("--scores", help="Also write every sample's scores and targets to this .safetensors file.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object.")] = False,
        skip_damaged: Annotated[bool, typer.Option("--skip-damaged", help="Evaluate around damaged shards or samples; eval.json records how many samples were missing.")] = False,
    ) -> None:
        """Top-1, top-5 and per-class accuracy (multi-label data: mAP and per-class AP) of a run (or of an adapter file on a backbone) on a split.

        Example: adaptcli eval --run runs/ssv2-adaptformer --split validation --views 2x3

        Example: adaptcli eval --adapter dtd.safetensors --checkpoint vit_b16.safetensors --data shards/dtd
        """
        from adaptcli.errors import AdaptError

        if adapter is not None:
            if run is not None:
                raise AdaptError("pass either --run or --adapter, not both")
            if checkpoint is None or data is None:
                raise AdaptError("--adapter needs --checkpoint BACKBONE_FILE and --data SHARDS")
            from adaptcli.deploy import load, read_header
            from adaptcli.engine.evaluate import check_scores_file, evaluate_export

            if scores is not None:
                check_scores_file(scores, {p.resolve() for p in (adapter, checkpoint, data)})

            metrics = evaluate_export(load(adapter, backbone=checkpoint), read_header(adapter), data, split=split, views=views,
                                      skip_damaged=skip_damaged, scores_file=scores)
            metrics.update(adapter=str(adapter), checkpoint=str(checkpoint))
        else:
            if run is None:
                raise AdaptError("pass --run RUN, or --adapter FILE --checkpoint FILE --data SHARDS")
            if checkpoint is not None:
                raise AdaptError("--checkpoint goes with --adapter; a run already knows its backbone")
            from adaptcli.engine.evaluate import evaluate_run

            metrics = evaluate_run(run, data=data, split=split, views=views, skip_damaged=skip_damaged,
                                   scores_file=scores)
        from adaptcli.engine.distributed import partial_state

        if not partial_state().is_main_process:
            return
        if as_json:
            typer.echo(json.dumps(metrics, indent=2))
            return
        if metrics.get("task") == "multi-label":
            excluded = metrics["classes_without_positives"]
            note = f", {excluded} classes without positives excluded" if excluded else ""
            typer.echo(f"{metrics['split']}: mAP {metrics['mAP']:.2f} over {metrics['classes_evaluated']} classes"
                       f"{note}  ({metrics['samples']} samples, views {metrics['views']})")
        else:
            typer.echo(
                f"{metrics['split']}: top-1 {metrics['top1']:.2f}  top-5 {metrics['top5']:.2f}  "
                f"mean-class {metrics['mean_class_acc']:.2f}  ({metrics['samples']} samples, views {metrics['views']})"
            )
        if metrics.get("missing_samples"):
            shards = ", ".join(metrics["damaged_shards"])
            typer.echo(f"warning: {metrics['missing_samples']} samples missing (damaged: {shards})", err=True)
        if run is not None:
            typer.echo(f"written: {run / 'eval.json'}")
