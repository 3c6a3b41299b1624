"""``adaptcli finetune``: train one method on prepared shards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from adaptcli.cli.choices import method_option_help
from adaptcli.cli.completion import complete_method, complete_recipe
from adaptcli.cli.errors import user_errors
from adaptcli.cli.overrides import model_overrides

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.config import RunConfig
    from adaptcli.runs.results import TrainSummary

PANEL = "Training"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def finetune(
        method: Annotated[str, typer.Option("--method", help=method_option_help(), autocompletion=complete_method)],
        recipe: Annotated[str, typer.Option("--recipe", help="A shipped recipe name (vtab, ssv2, quick, ...) or a YAML path.", autocompletion=complete_recipe)],
        data: Annotated[Path, typer.Option("--data", help="A folder written by 'adaptcli prepare'.")],
        out: Annotated[Path, typer.Option("--out", help="The run folder to create.")],
        model: Annotated[Optional[str], typer.Option("--model", help="Backbone name (timm, video_vit_* or swin3d_t|s|b); overrides the recipe.")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Local pre-trained weights (safetensors, .pth, .npz).")] = None,
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe key: --set train.epochs=3 (repeatable).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (configuration, data, model, parameters, steps) and train nothing, after every check the run makes before training (exit 2 where the run would refuse).")] = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bars (on stderr).")] = True,
    ) -> None:
        """Adapt a backbone to a prepared dataset with one method.

        Example: adaptcli finetune --method arc --recipe vtab --data shards/dtd --out runs/dtd-arc
        """
        from adaptcli.config import resolve

        overrides = model_overrides(model, checkpoint, set_)
        config = resolve(recipe, method=method, overrides=overrides)
        if dry_run:
            from adaptcli.engine.distributed import partial_state
            from adaptcli.engine.plan import plan_lines

            for line in plan_lines(config, data, out, resume=resume, overwrite=overwrite,
                                   world_size=partial_state().num_processes):
                typer.echo(line)
            return

        from adaptcli.engine.finetune import finetune as run_finetune
        from adaptcli.output import Output

        summary = run_finetune(config, data, out, resume=resume, overwrite=overwrite, output=Output(bars=progress))
        from adaptcli.engine.distributed import partial_state

        if partial_state().is_main_process:
            for line in summary_lines(summary):
                typer.echo(line)
            typer.echo(f"run folder: {out}  (next: adaptcli eval --run {out}{_eval_split(config, data)})")


def _eval_split(config: RunConfig, data: Path) -> str:
    """The ``--split`` that eval needs to test this run where it tests (see :func:`eval_split_option`)."""
    from adaptcli.data.splits import eval_split_option
    from adaptcli.data.stream.shards import ShardFolder

    return eval_split_option(config.data.test_split, config.data.val_split, ShardFolder.read(data).manifest.splits)


def summary_lines(summary: TrainSummary) -> list[str]:
    from adaptcli.runs.results import METRIC_LABELS

    s, best = summary, summary.best_val
    return [
        f"method {s.method} on {s.backbone}: {s.trainable_params:,} trainable parameters "
        f"({s.trainable_percent:.3f}% of the backbone)",
        f"{s.epochs} epochs, {s.steps} steps in {s.train_seconds:.1f} s "
        f"({s.samples_per_second} samples/s), final loss {s.final_loss:.4f}",
        efficiency_line(s),
        (f"best validation {METRIC_LABELS[s.metric]} {best:.2f} at epoch {s.best_epoch}" if best is not None
         else "no validation split: the last epoch is kept"),
        *probe_lines(s),
    ]


def probe_lines(summary: TrainSummary) -> list[str]:
    """A probe grid's table: each probe's lr, weight decay and best validation value; the kept one marked."""
    from adaptcli.runs.results import METRIC_LABELS

    if not summary.probes:
        return []
    metric = summary.metric
    rule = ("best on validation" if summary.best_epoch else
            "no validation split: the lowest training loss of the last epoch")
    lines = [f"{len(summary.probes)} probes on one backbone pass; kept: {rule}"]
    for index, probe in enumerate(summary.probes):
        value = probe.get(f"best_val_{metric}")
        shown = (f"val {METRIC_LABELS[metric]} {value:.2f} (epoch {probe['best_epoch']})" if value is not None
                 else f"final loss {probe.get('final_loss', float('nan')):.4f}")
        lines.append(f"  probe {index}: lr {probe['lr']:g}, weight decay {probe['weight_decay']:g}, {shown}"
                     f"{'  <- kept' if probe['chosen'] else ''}")
    return lines


def efficiency_line(summary: TrainSummary) -> str:
    """Peak memory and speed, comparable between runs of the same recipe."""
    kind = {"cuda_max_memory_allocated": "GPU max allocated", "cpu_peak_rss": "CPU peak resident"}
    per_step = summary.seconds_per_step
    step = f"{per_step:.4f} s per optimiser step" if per_step is not None else "no optimiser step in this session"
    memory = kind.get(summary.peak_memory_kind or "", summary.peak_memory_kind)
    wait = f", waiting for data {summary.data_wait:.0%} of it" if summary.data_wait is not None else ""
    return (f"peak memory {summary.peak_memory_mb:,.1f} MiB ({memory}), "
            f"{summary.samples_per_second} samples/s, {step}, train time {summary.train_seconds:.1f} s{wait}")
