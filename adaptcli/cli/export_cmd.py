"""``adaptcli export``: deployable weights from a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptcli.cli.choices import format_option_help, mergeable_methods
from adaptcli.cli.errors import user_errors
from adaptcli.errors import AdaptError

PANEL = "Deployment"


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel=PANEL)
    @user_errors
    def export(
        run: Annotated[Path, typer.Option("--run", help="A run folder written by 'adaptcli finetune'.")],
        out: Annotated[Path, typer.Option("--out", help="The file (or folder, for folder formats) to write.")],
        merge: Annotated[bool, typer.Option("--merge", help=f"Fold the method into the backbone's own architecture ({mergeable_methods()}).")] = False,
        full: Annotated[bool, typer.Option("--full", help="The whole adapted model plus its configuration.")] = False,
        adapter_only: Annotated[bool, typer.Option("--adapter-only", help="Only the trained tensors plus configuration.")] = False,
        file_format: Annotated[str, typer.Option("--format", help=f"How the export is laid out. {format_option_help()}")] = "safetensors",
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file (never one the run reads).")] = False,
    ) -> None:
        """Write a run's weights for deployment (one of --merge, --full, --adapter-only).

        Example: adaptcli export --run runs/dtd-arc --merge --out dtd.safetensors
        """
        chosen = [name for name, flag in (("merge", merge), ("full", full), ("adapter-only", adapter_only)) if flag]
        if len(chosen) != 1:
            what = "none" if not chosen else " and ".join(f"--{c}" for c in chosen)
            raise AdaptError(f"choose exactly one of --merge, --full, --adapter-only (got {what})")
        from adaptcli.deploy import export_run

        result = export_run(run, out, chosen[0], file_format, overwrite=overwrite)  # type: ignore[arg-type]
        for line in summary_lines(result):
            typer.echo(line)


def summary_lines(result: dict) -> list[str]:
    """What was written, how it checked, and the one line of Python that uses it."""
    path, mode = result["path"], result["mode"]
    lines = []
    diff = result.get("max_abs_diff")
    check = result.get("check") or {"merge": "merge check", "full": "reload check",
                                    "adapter-only": "adapter round-trip check"}[mode]
    if diff is not None:
        lines.append(f"{check}: max |difference| = {diff:.2e} (limit 1e-04)")
    elif mode == "adapter-only":
        lines.append(f"{check}: skipped (no backbone file at hand; the run used pre-trained weights from timm)")
    size = result["bytes"] / 1e6
    lines.append(f"wrote {path}: {mode}, {result['method']} on {result['backbone']}, "
                 f"{result['tensors']} tensors, {size:.2f} MB")
    if result.get("use"):  # the format says how its output is used
        lines.extend(result["use"])
    elif mode == "adapter-only":
        backbone = result.get("backbone_file") or "BACKBONE.safetensors"
        lines.append(f'use: model = adaptcli.load("{path}", backbone="{backbone}")')
        lines.append(f"     adaptcli eval --adapter {path} --checkpoint {backbone} --data SHARDS")
    else:
        lines.append(f'use: model = adaptcli.load("{path}")')
        if mode == "merge":
            kwargs = ", ".join(f"{k}={v!r}" for k, v in result["create_kwargs"].items())
            lines.append(f'     or plain timm: timm.create_model("{result["backbone"]}", {kwargs})'
                         f'.load_state_dict(safetensors.torch.load_file("{path}"))')
    return lines
