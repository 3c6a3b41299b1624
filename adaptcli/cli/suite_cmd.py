"""``adaptcli suite``: one method over a whole benchmark (VTAB-1k, FGVC), tuned per task, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptcli.cli.choices import benchmark_help, method_option_help
from adaptcli.cli.completion import complete_benchmark, complete_method, complete_recipe
from adaptcli.cli.errors import user_errors
from adaptcli.cli.overrides import model_overrides

PANEL = "Protocols"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def suite(
        bench: Annotated[str, typer.Argument(help=benchmark_help(), autocompletion=complete_benchmark)],
        method: Annotated[str, typer.Option("--method", help=method_option_help(), autocompletion=complete_method)],
        data: Annotated[Path, typer.Option("--data", help="The --shards folder of 'adaptcli prepare vtab' (or one 'prepare fgvc' per dataset under one folder): one sub-folder per task.")],
        out: Annotated[Path, typer.Option("--out", help="The suite folder (re-run the same command to continue it).")],
        model: Annotated[Optional[str], typer.Option("--model", help="Backbone name; overrides the recipe.")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Local pre-trained weights.")] = None,
        recipe: Annotated[Optional[str], typer.Option("--recipe", help="Recipe name or YAML (default: the benchmark's, vtab or fgvc).", autocompletion=complete_recipe)] = None,
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe key for every run (repeatable).")] = None,
        sweep: Annotated[Optional[list[str]], typer.Option("--sweep", help="KEY=V1,V2,... tuned per task (repeatable; replaces the recipe's sweep: grid).")] = None,
        tasks: Annotated[Optional[str], typer.Option("--tasks", help="Comma-separated tasks to run (default: every prepared task).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (tasks, points, runs, which exist) and train nothing; refuses what the suite would refuse before training.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Retrain runs whose settings changed instead of refusing.")] = False,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bars (the suite's and each run's, on stderr).")] = True,
    ) -> None:
        """Run a method over every task of VTAB-1k or FGVC: tune on the validation split, retrain, test once.

        Example: adaptcli suite vtab --method arc --data shards/vtab --out suites/vtab-arc --sweep train.lr=1e-3,1e-2
        """
        from adaptcli.config import recipe_sweep
        from adaptcli.protocols.benchmarks import average_lines, benchmark, find_tasks
        from adaptcli.protocols.grid import grid_points, parse_sweeps
        from adaptcli.protocols.suite import SuiteSpec, plan_lines, run_suite

        spec_bench = benchmark(bench)
        overrides = model_overrides(model, checkpoint, set_)
        chosen_recipe = recipe or spec_bench.recipe
        grid = parse_sweeps(sweep, method) if sweep else recipe_sweep(chosen_recipe, method)
        wanted = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
        spec = SuiteSpec(bench, method, data, out, chosen_recipe, overrides, grid, wanted)
        if dry_run:
            for line in plan_lines(spec, find_tasks(spec_bench, data, wanted), grid_points(grid), overwrite=overwrite):
                typer.echo(line)
            return
        results = run_suite(spec, overwrite=overwrite, log=typer.echo, progress=progress)
        from adaptcli.engine.distributed import partial_state

        if partial_state().is_main_process:
            for line in average_lines(spec_bench, results.averages):
                typer.echo(line)
            typer.echo(f"results: {out / 'results.md'}, results.json, results.csv")
