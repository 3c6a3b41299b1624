"""``adaptcli inspect-params``: exact parameter counts of a method on a backbone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adaptcli.cli.choices import method_option_help
from adaptcli.cli.completion import complete_method
from adaptcli.cli.errors import user_errors
from adaptcli.cli.overrides import model_overrides

PANEL = "Getting started"


def register(app: typer.Typer) -> None:
    @app.command("inspect-params", rich_help_panel=PANEL)
    @user_errors
    def inspect_params(
        model: Annotated[str, typer.Option("--model", help="Backbone name: a timm model, video_vit_* or swin3d_t|s|b.")],
        method: Annotated[str, typer.Option("--method", help=method_option_help(), autocompletion=complete_method)],
        num_classes: Annotated[int, typer.Option("--num-classes", min=1, help="Classes of the target task.")],
        set_: Annotated[Optional[list[str]], typer.Option("--set", help="Method or model option, e.g. --set method.mid_dim=16 (repeatable).")] = None,
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="Local weights to load (random weights otherwise).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
        flops: Annotated[bool, typer.Option("--flops", help="Also count forward FLOPs per image or clip (on the meta device): the backbone, the adapted model, the merged one and what the merge adds.")] = False,
    ) -> None:
        """Count backbone, method and head parameters; nothing is downloaded.

        Example: adaptcli inspect-params --model vit_base_patch16_224 --method adaptformer --num-classes 174
        """
        from adaptcli.config import resolve

        overrides = model_overrides(model, checkpoint, set_)
        config = resolve(None, method=method, overrides=overrides)

        from adaptcli.runs.params import inspect_report

        report = inspect_report(config, num_classes)
        if flops:
            from adaptcli.runs.flops import flop_report

            report["flops"] = flop_report(config, num_classes)
        typer.echo(json.dumps(report, indent=2) if as_json else render_table(report))


def render_table(report: dict[str, Any]) -> str:
    """The human-readable form of :func:`inspect_report`."""
    rows = [
        ("backbone", f"{report['backbone']} ({report['model']})"),
        ("method", report["method"]),
        ("classes", f"{report['num_classes']}"),
        ("backbone parameters", f"{report['backbone_params']:,}"),
        ("method parameters", f"{report['method_params']:,}"),
        ("head parameters", f"{report['head_params']:,}"),
        *([("backbone parameters trained", f"{report['backbone_trained_params']:,} (see the tensors below)")]
          if report.get("backbone_trained_params") else []),
        ("trainable total", f"{report['trainable_params']:,}"),
        ("trainable % of backbone", f"{report['trainable_percent']:.4f}%"),
        ("mergeable", "yes" if report["mergeable"] else "no"),
        *([("probes (grid)", f"{report['probes']}: counts above are all of theirs")] if "probes" in report else []),
    ]
    counted = report.get("flops")
    if counted:
        def giga(n: int | None) -> str:
            return "- (not mergeable)" if n is None else f"{n / 1e9:,.3f}"
        rows += [(f"GFLOPs per {counted['input']}", ""), ("  backbone", giga(counted["backbone"])),
                 ("  adapted (training)", giga(counted["adapted"])), ("  merged", giga(counted["merged"])),
                 ("  merged extra", giga(counted["merged_extra"]))]
        if "temporal_embedding_additions" in counted:
            rows.append(("  + temporal_embedding", f"{counted['temporal_embedding_additions']:,} additions (element-wise, "
                                                   "not in the FLOPs above)"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append("trainable tensors:")
    locations = report["trainable_locations"]
    loc_width = max((len(k) for k in locations), default=0)
    for where, n in sorted(locations.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {where.ljust(loc_width)}  {n:>12,}")
    return "\n".join(lines)
