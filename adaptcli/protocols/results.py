"""A suite's results: test top-1 per task, the chosen point, the averages; as JSON, Markdown and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from adaptcli.protocols.benchmarks import average_lines, benchmark


def to_markdown(results: dict[str, Any]) -> str:
    bench = benchmark(results["benchmark"])
    lines = [f"# {bench.name} suite: {results['method']} on {results['backbone']}", "",
             f"Protocol: {results['protocol']}.", "",
             f"| task | group | test top-1 | chosen point | {bench.select_split} top-1 | trainable params |",
             "|---|---|---|---|---|---|"]
    for row in results["tasks"]:
        chosen = ", ".join(f"{k}={v}" for k, v in row["chosen"].items()) or "(recipe)"
        sel = f"{row['selection_top1']:.2f}" if row["selection_top1"] is not None else "-"
        lines.append(f"| {row['task']} | {row['group'] or '-'} | {row['test_top1']:.2f} | {chosen} | {sel} | "
                     f"{row['trainable_params']:,} |")
    lines += ["", *[f"- {line}" for line in average_lines(bench, results["averages"])]]
    return "\n".join(lines) + "\n"


def to_csv(results: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", "group", "test_top1", "point", "selection_top1", "trainable_params"])
    for row in results["tasks"]:
        writer.writerow([row["task"], row["group"] or "", f"{row['test_top1']:.4f}", row["point"],
                         "" if row["selection_top1"] is None else f"{row['selection_top1']:.4f}",
                         row["trainable_params"]])
    avg = results["averages"]
    label = f"({avg['tasks_present']} of {avg['tasks_total']} tasks{'' if avg['complete'] else ', partial'})"
    if avg["mean_over_tasks"] is not None:
        writer.writerow([f"mean over tasks {label}", "", f"{avg['mean_over_tasks']:.4f}", "", "", ""])
    if avg.get("mean_of_group_means") is not None:
        writer.writerow([f"mean of group means {label}", "", f"{avg['mean_of_group_means']:.4f}", "", "", ""])
    return buffer.getvalue()


def write_results(out: Path, results: dict[str, Any]) -> None:
    from adaptcli.io import write_json, write_text

    write_json(out / "results.json", results)
    write_text(out / "results.md", to_markdown(results))
    write_text(out / "results.csv", to_csv(results))
