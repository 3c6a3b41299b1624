"""The demo's outputs: the table on stdout, ``results.md``, ``results.json`` and the top-1 vs parameters plot."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from adaptcli.runs.results import EvalResult, TrainSummary

NAMES = {"linear": "linear probe", "attentive_probe": "attentive probe (V-JEPA)", "vpt_deep": "VPT-deep (1 token)",
         "adaptformer": "AdaptFormer-64", "arc": "ARC (r=50)", "lora": "LoRA (r=8, qkv)",
         "lora+pace": "LoRA + PACE (lambda 1, sigma 1.2)", "ssf": "SSF", "adapter_plus": "Adapter+ (8)",
         "full": "full fine-tuning"}
PLOT_NAME = "top1_vs_params.png"


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per method (what results.json stores and the table shows)."""
    out = []
    for row in rows:
        s: TrainSummary = row["summary"]
        t: EvalResult = row["test"]
        out.append({
            "method": row["method"],
            "trainable_params": s.trainable_params,
            "percent_of_backbone": s.trainable_percent,
            "val_top1": s.best_val,  # the demo's tasks are single-label: top-1
            "best_epoch": s.best_epoch,
            "test_top1": t.top1,
            "test_mean_class_acc": t.mean_class_acc,
            "train_seconds": s.train_seconds,
            "mergeable": s.mergeable,
            "run": row["run"],
        })
    return out


def format_table(records: list[dict[str, Any]], markdown: bool) -> str:
    """The table as Markdown or as aligned plain text."""
    head = ["method", "trainable params", "% of backbone", "val top-1", "test top-1", "train time (s)"]
    body = [[NAMES.get(r["method"], r["method"]), f"{r['trainable_params']:,}", f"{r['percent_of_backbone']:.2f}",
             f"{r['val_top1']:.1f}" if r["val_top1"] is not None else "-", f"{r['test_top1']:.1f}",
             f"{r['train_seconds']:.0f}"] for r in records]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *[fmt(row) for row in body]])


def verdict(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Do the adapters beat linear probing on test, and by how much (top-1 points)?"""
    by = {r["method"]: r["test_top1"] for r in records}
    if "linear" not in by:
        return {}
    adapters = {m: by[m] - by["linear"] for m in ("adaptformer", "arc", "vpt_deep") if m in by}
    return {"margin_over_linear": adapters,
            "adapters_beat_linear": bool(adapters) and all(v > 0 for v in adapters.values())}


def plot(records: list[dict[str, Any]], path: Path, chance: float, title: str) -> Path:
    """Test top-1 against trainable parameters (log x), one labelled point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for i, r in enumerate(records):
        ax.scatter(r["trainable_params"], r["test_top1"], s=60, zorder=3)
        ax.annotate(NAMES.get(r["method"], r["method"]), (r["trainable_params"], r["test_top1"]),
                    textcoords="offset points", xytext=(6, 6 if i % 2 == 0 else -14), fontsize=9)
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label=f"chance ({chance:.1f}%)")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(out: Path, settings: Any, rows: list[dict[str, Any]], pre_summary: TrainSummary,
                 pre_eval: EvalResult, merge: dict[str, Any] | None, timings: dict[str, float],
                 total_seconds: float, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Print the table and write results.md, results.json and the plot into ``out``."""
    from adaptcli.demo.datasets import MOTIONS, SHAPES, class_counts

    records = table_rows(rows)
    chance = 100.0 / len(MOTIONS)
    command = "adaptcli demo" + (" --quick" if settings.quick else "") + f" --out {out}"
    counts = class_counts(settings.sizes)
    check = verdict(records)
    results = {
        "command": command,
        "quick": settings.quick,
        "total_seconds": round(total_seconds, 1),
        "machine": f"{platform.machine()}, {_cpus()} CPU cores, torch threads {_threads()}",
        "settings": {**{k: v for k, v in asdict(settings).items() if k != "sizes"},
                     "samples_per_split": {"images (train/val/test)": counts["images"],
                                           "clips (train/val/test)": counts["clips"]},
                     "image_classes": list(SHAPES), "video_classes": list(MOTIONS)},
        "pretrain": {"model": pre_summary.backbone, "test_top1": pre_eval.top1,
                     "val_top1": pre_summary.best_val, "train_seconds": pre_summary.train_seconds,
                     "params": pre_summary.trainable_params},
        "backbone_params": rows[0]["summary"].backbone_params if rows else None,
        "rows": records,
        "merge_check": merge,
        "verdict": check,
        "chance_top1": chance,
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    title = "adaptcli demo: image-pretrained ViT -> motion clips" + (" (--quick: noisy)" if settings.quick else "")
    plot(records, out / PLOT_NAME, chance, title)
    text = format_table(records, markdown=False)
    echo("")
    echo(text)
    for line in _notes(results):
        echo(line)
    (out / "results.md").write_text(_markdown(results, records))
    echo(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / PLOT_NAME}  (total {total_seconds:.0f} s)")
    return results


def _notes(results: dict[str, Any]) -> list[str]:
    pre = results["pretrain"]
    lines = [
        f"top-1 in %, {len(results['settings']['video_classes'])} motion classes (chance {results['chance_top1']:.1f}%); "
        "the epoch is selected on validation, test is never used for selection",
        f"image pre-training ({pre['model']}, full): test top-1 {pre['test_top1']:.1f} in {pre['train_seconds']:.0f} s",
    ]
    merge = results["merge_check"]
    if merge:
        lines.append(f"arc merged into the plain ViT: max |logit difference| {merge['max_abs_diff']:.2e} ({merge['path']})")
    check = results["verdict"]
    if check:
        margins = ", ".join(f"{NAMES[m]} {v:+.1f}" for m, v in check["margin_over_linear"].items())
        lines.append(f"test top-1 over linear probing: {margins} points")
    if results["quick"]:
        lines.append("--quick: few clips and epochs, so these numbers are noisy; run without --quick for the real table")
    return lines


def _markdown(results: dict[str, Any], records: list[dict[str, Any]]) -> str:
    s = results["settings"]
    parts = [
        "# adaptcli demo results",
        "",
        f"Command: `{results['command']}` ({results['total_seconds']:.0f} s on {results['machine']})",
        "",
        format_table(records, markdown=True),
        "",
        *[f"- {line}" for line in _notes(results)],
        "",
        "## Settings",
        "",
        f"- video classes (time-reversed pairs): {', '.join(s['video_classes'])}",
        f"- image classes (shapes): {', '.join(s['image_classes'])}",
        f"- samples per split: {s['samples_per_split']}",
        f"- image pre-training: {s['pretrain_epochs']} epochs, AdamW lr {s['pretrain_lr']}",
        f"- video adaptation: {s['video_epochs']} epochs, batch {s['batch_size']}, AdamW, lr per method "
        + ", ".join(f"{m} {lr:g}" for m, lr in s["lr"].items()),
        f"- seed {s['seed']}; backbone {results['backbone_params']:,} parameters",
        f"- stage times (s): {results['timings']}",
        "",
        "![top-1 against trainable parameters](top1_vs_params.png)",
        "",
    ]
    return "\n".join(parts)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _threads() -> int:
    import torch

    return torch.get_num_threads()
