"""``adaptcli export``: deployable weights from a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from adaptcli.cli.choices import format_option_help, mergeable_methods
from adaptcli.cli.errors import user_errors
from adaptcli.deploy.modes import ExportMode
from adaptcli.errors import AdaptError

if TYPE_CHECKING:  # pragma: no cover
    from adaptcli.deploy.export import ExportResult

PANEL = "Deployment"
MERGE, FULL, ADAPTER_ONLY = ExportMode.MERGE, ExportMode.FULL, ExportMode.ADAPTER_ONLY


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def export(
        run: Annotated[Path, typer.Option("--run", help="A run folder written by 'adaptcli finetune'.")],
        out: Annotated[Path, typer.Option("--out", help="The file (or folder, for folder formats) to write.")],
        merge: Annotated[bool, typer.Option(MERGE.flag, help=f"{MERGE.help} ({mergeable_methods()}).")] = False,
        full: Annotated[bool, typer.Option(FULL.flag, help=FULL.help)] = False,
        adapter_only: Annotated[bool, typer.Option(ADAPTER_ONLY.flag, help=ADAPTER_ONLY.help)] = False,
        file_format: Annotated[str, typer.Option("--format", help=f"How the export is laid out. {format_option_help()}")] = "safetensors",
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file (never one the run reads).")] = False,
        push: Annotated[Optional[str], typer.Option("--push", help="With --format hub: upload the folder to this Hugging Face Hub model repository (USER/NAME) afterwards.")] = None,
        backbone: Annotated[Optional[Path], typer.Option("--backbone", help="Where the run's backbone file moved (its backbone.safetensors, or the --checkpoint file it was trained from); it must be that same file (run.json records its SHA-256).")] = None,
    ) -> None:
        """Write a run's weights for deployment (one of --merge, --full, --adapter-only).

        Example: adaptcli export --run runs/dtd-arc --merge --out dtd.safetensors

        Example: adaptcli export --run runs/dtd-arc --merge --format hub --out dtd-arc --push me/dtd-arc
        """
        chosen = [mode for mode, flag in ((MERGE, merge), (FULL, full), (ADAPTER_ONLY, adapter_only)) if flag]
        if len(chosen) != 1:
            what = "none" if not chosen else " and ".join(mode.flag for mode in chosen)
            raise AdaptError(f"choose exactly one of {', '.join(mode.flag for mode in ExportMode)} (got {what})")
        if push is not None and file_format != "hub":
            raise AdaptError(f"--push uploads a hub folder: add --format hub (got --format {file_format})")
        from adaptcli.deploy import export_run

        result = export_run(run, out, chosen[0], file_format, overwrite=overwrite, backbone=backbone)
        for line in summary_lines(result):
            typer.echo(line)
        if push is not None:
            from adaptcli.deploy.formats.hub import push_folder

            typer.echo(f"pushed: {push_folder(out, push)}")


def summary_lines(result: "ExportResult") -> list[str]:
    """What was written, how it checked, and how the format says its output is used."""
    from adaptcli.deploy.check import TOLERANCE

    lines = []
    if result.max_abs_diff is not None:
        limit = "1e-04" if result.limit == TOLERANCE else f"{result.limit:.2e}, float32 rounding of this model's logits"
        lines.append(f"{result.check}: max |difference| = {result.max_abs_diff:.2e} (limit {limit})")
    elif result.mode is ADAPTER_ONLY:
        lines.append(f"{result.check}: skipped (no backbone file at hand; the run used pre-trained weights from timm)")
    lines.append(f"wrote {result.path}: {result.mode}, {result.method} on {result.backbone}, "
                 f"{result.tensors} tensors, {result.bytes / 1e6:.2f} MB")
    return lines + list(result.use)
