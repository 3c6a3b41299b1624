"""``adaptcli eval``: accuracy of a finished run, or of any export adaptcli reads on a shard folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from adaptcli.cli.errors import user_errors

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.output import Output
    from adaptcli.runs.results import EvalResult

PANEL = "Training"
WEIGHTS = ("selected", "last", "best", "ema")


def register(app: typer.Typer) -> None:
    @app.command("eval", rich_help_panel=PANEL)
    @user_errors
    def evaluate(
        run: Annotated[Optional[Path], typer.Option("--run", help="A run folder written by 'adaptcli finetune'.")] = None,
        data: Annotated[Optional[Path], typer.Option("--data", help="Shards to evaluate on (default: the run's).")] = None,
        split: Annotated[str, typer.Option("--split", help="Split to evaluate.")] = "test",
        views: Annotated[Optional[str], typer.Option("--views", help="Video multi-view testing CLIPSxCROPS, e.g. 2x3.")] = None,
        adapter: Annotated[Optional[Path], typer.Option("--adapter", help="An adapter-only export to evaluate instead of a run (with --checkpoint and --data).")] = None,
        export: Annotated[Optional[Path], typer.Option("--export", help="An export to evaluate instead of a run: a .safetensors file, a timm, hub or peft folder, or hf-hub:USER/NAME (with --data; adapter-only exports with --checkpoint).")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Backbone weights for --adapter or an adapter-only --export (any layout finetune accepts).")] = None,
        scores: Annotated[Optional[Path], typer.Option("--scores", help="Also write every sample's scores and targets to this .safetensors file.")] = None,
        weights: Annotated[str, typer.Option("--weights", help="Which of the run's weights: selected (best on validation, else last), last, best, or ema (a run trained with train.ema).")] = "selected",
        as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object.")] = False,
        skip_damaged: Annotated[bool, typer.Option("--skip-damaged", help="Evaluate around damaged shards or samples; eval.json records how many samples were missing.")] = False,
        backbone: Annotated[Optional[Path], typer.Option("--backbone", help="With --run: where the run's backbone file moved (its backbone.safetensors, or the --checkpoint file it was trained from); it must be that same file (run.json records its SHA-256).")] = None,
        classes_by_index: Annotated[bool, typer.Option("--classes-by-index", help="Score --data whose class names differ from the model's anyway, class i of the data as class i of the model (same number of classes, task and modality still required).")] = False,
        out: Annotated[Optional[Path], typer.Option("--out", help="Write the results (eval.json's contents) to this file instead; without it a run's eval.json is written only for the run's own data.")] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar (on stderr).")] = True,
    ) -> None:
        """Top-1, top-5 and per-class accuracy (multi-label data: mAP and per-class AP) of a run (or of an adapter file on a backbone) on a split.

        Example: adaptcli eval --run runs/ssv2-adaptformer --split validation --views 2x3

        Example: adaptcli eval --adapter dtd.safetensors --checkpoint vit_b16.safetensors --data shards/dtd

        Example: adaptcli eval --export dtd-peft --checkpoint vit_b16.safetensors --data shards/dtd

        A run's eval.json holds its score on its own data (the dataset.json it was trained on) only: on other
        data the result is printed, and written only to --out. Data whose classes, task or modality differ from
        the model's is refused (other class names: --classes-by-index).
        """
        from adaptcli.errors import AdaptError
        from adaptcli.output import Output

        output = Output(bars=progress)
        if adapter is not None and export is not None:
            raise AdaptError("pass either --adapter or --export, not both (--export takes adapter files too)")
        if backbone is not None and run is None:
            raise AdaptError("--backbone goes with --run (where the run's backbone file moved); exports take "
                             "their backbone with --checkpoint")
        if adapter is not None:
            result = evaluate_adapter(adapter, checkpoint, data, run, split=split, views=views,
                                      skip_damaged=skip_damaged, scores=scores, classes_by_index=classes_by_index,
                                      out=out, output=output)
        elif export is not None:
            result = evaluate_exported(export, checkpoint, data, run, split=split, views=views,
                                       skip_damaged=skip_damaged, scores=scores, classes_by_index=classes_by_index,
                                       out=out, output=output)
        else:
            result = evaluate_run_folder(run, checkpoint, data, split=split, views=views,
                                         skip_damaged=skip_damaged, scores=scores, weights=weights,
                                         backbone=backbone, classes_by_index=classes_by_index, out=out, output=output)
        from adaptcli.engine.distributed import partial_state

        if partial_state().is_main_process:
            show(result, as_json, written_to(run, data, out))


def evaluate_adapter(adapter: Path, checkpoint: Optional[Path], data: Optional[Path], run: Optional[Path], *,
                     split: str, views: Optional[str], skip_damaged: bool, scores: Optional[Path],
                     classes_by_index: bool = False, out: Optional[Path] = None,
                     output: Optional[Output] = None) -> EvalResult:
    """``--adapter FILE --checkpoint BACKBONE --data SHARDS``."""
    from adaptcli.errors import AdaptError

    if run is not None:
        raise AdaptError("pass either --run or --adapter, not both")
    if checkpoint is None or data is None:
        raise AdaptError("--adapter needs --checkpoint BACKBONE_FILE and --data SHARDS")
    return evaluate_exported(adapter, checkpoint, data, run, split=split, views=views, skip_damaged=skip_damaged,
                             scores=scores, classes_by_index=classes_by_index, out=out, given_as_adapter=True,
                             output=output)


def evaluate_exported(export: Path, checkpoint: Optional[Path], data: Optional[Path], run: Optional[Path], *,
                      split: str, views: Optional[str], skip_damaged: bool, scores: Optional[Path],
                      classes_by_index: bool = False, out: Optional[Path] = None,
                      given_as_adapter: bool = False, output: Optional[Output] = None) -> EvalResult:
    """``--export PATH --data SHARDS`` (``--checkpoint BACKBONE`` for an adapter-only export): whatever the
    format registry opens, checked against the data before its weights are read; the results also go to ``out``."""
    from adaptcli.deploy.formats import open_export
    from adaptcli.deploy.modes import ExportMode
    from adaptcli.engine.evaluate import check_export_data, check_output_file, evaluate_export
    from adaptcli.errors import AdaptError

    if run is not None:
        raise AdaptError("pass either --run or --export, not both")
    if data is None:
        raise AdaptError("--export needs --data SHARDS: an export holds the model, not its data")
    reads = {p.resolve() for p in (export, checkpoint, data) if p is not None}
    for option, target in (("--scores", scores), ("--out", out)):
        if target is not None:
            check_output_file(target, reads, option)
    opened = open_export(export, backbone=checkpoint)
    if checkpoint is not None and ExportMode.from_header(opened.header.get("format")) is not ExportMode.ADAPTER_ONLY:
        raise AdaptError(f"--checkpoint goes with an adapter-only export; {opened.source} holds every weight: drop it")
    if opened.runtime != "torch":
        raise AdaptError(f"eval runs PyTorch models and {opened.source} runs in {opened.runtime}; evaluate the run "
                         "(--run) or its .safetensors export, or use adaptcli predict on raw files")
    check_export_data(opened.header, data, split, opened.source, classes_by_index)
    result = evaluate_export(opened.load(), opened.header, data, split=split, views=views,
                             skip_damaged=skip_damaged, scores_file=scores, output=output)
    result.export, result.checkpoint = str(export), str(checkpoint) if checkpoint is not None else None
    if given_as_adapter:
        result.adapter, result.export = str(export), None
    _write_out(result, out)
    return result


def _write_out(result: EvalResult, out: Optional[Path]) -> None:
    """``--out`` of an export's evaluation (a run's is written by ``evaluate_run``)."""
    if out is None:
        return
    from adaptcli.engine.distributed import partial_state
    from adaptcli.ownership import record_file

    if partial_state().is_main_process:
        result.write(out)
        record_file(out)


def evaluate_run_folder(run: Optional[Path], checkpoint: Optional[Path], data: Optional[Path], *, split: str,
                        views: Optional[str], skip_damaged: bool, scores: Optional[Path],
                        weights: str = "selected", backbone: Optional[Path] = None, classes_by_index: bool = False,
                        out: Optional[Path] = None, output: Optional[Output] = None) -> EvalResult:
    """``--run RUN`` (writes its eval.json on its own data, else only ``--out``)."""
    from adaptcli.engine.evaluate import evaluate_run
    from adaptcli.errors import AdaptError

    if run is None:
        raise AdaptError("pass --run RUN, or --adapter FILE --checkpoint FILE --data SHARDS, or --export PATH "
                         "--data SHARDS (any export adaptcli reads)")
    if checkpoint is not None:
        raise AdaptError("--checkpoint goes with --adapter; a run knows its backbone: pass --backbone FILE "
                         "where its backbone file moved")
    if weights not in WEIGHTS:
        raise AdaptError(f"--weights {weights}: choose one of {', '.join(WEIGHTS)}")
    return evaluate_run(run, data=data, split=split, views=views, skip_damaged=skip_damaged, scores_file=scores,
                        weights=weights, backbone=backbone, classes_by_index=classes_by_index, out=out,
                        output=output)


def written_to(run: Optional[Path], data: Optional[Path], out: Optional[Path]) -> tuple[Optional[Path], str]:
    """(the file the results went to, or None; a note when a run's score on other data was not recorded)."""
    if out is not None or run is None:
        return out, ""
    from adaptcli.engine.evaluate import eval_record
    from adaptcli.runs.folder import RunDir

    folder = RunDir(run)
    data_dir = Path(data) if data is not None else folder.info().data_dir
    record = eval_record(folder, data_dir)
    if record is not None:
        return record, ""
    return None, (f"note: {data_dir} is not the data the run was trained on (its dataset.json differs): "
                  f"{folder.eval_file} is left as it was; pass --out FILE to keep this result")


def show(result: EvalResult, as_json: bool, written: tuple[Optional[Path], str] = (None, "")) -> None:
    """The result as one JSON object, or as a line (a warning on stderr for missing samples); where it was
    written (``written``: :func:`written_to`'s file and note, the note on stderr)."""
    path, note = written
    if note:
        typer.echo(note, err=True)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(result_line(result))
    if result.missing_samples:
        shards = ", ".join(result.damaged_shards or {})
        why = f"damaged: {shards}" if shards else "the shards hold fewer than dataset.json claims"
        typer.echo(f"warning: {result.missing_samples} samples missing ({why})", err=True)
    if path is not None:
        typer.echo(f"written: {path}")


def result_line(r: EvalResult) -> str:
    """``SPLIT: top-1 .. top-5 .. mean-class ..`` (multi-label: ``SPLIT: mAP .. over N classes``)."""
    seen = f"({r.samples} samples, views {r.views})"
    if r.task == "multi-label":
        excluded = r.classes_without_positives
        note = f", {excluded} classes without positives excluded" if excluded else ""
        return f"{r.split}: mAP {r.mAP:.2f} over {r.classes_evaluated} classes{note}  {seen}"
    return f"{r.split}: top-1 {r.top1:.2f}  top-5 {r.top5:.2f}  mean-class {r.mean_class_acc:.2f}  {seen}"
