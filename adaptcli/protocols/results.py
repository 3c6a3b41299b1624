"""A suite's records: its settings (``suite.json``) and its results (``results.json``: the test score per task
in the task's headline metric, the chosen point, the averages), as JSON, Markdown and CSV.

:class:`SuiteResults` is the only reader and writer of ``results.json``, :func:`read_settings` and
:func:`write_settings` of ``suite.json``. ``results.json`` written before 0.x named the test and selection
scores ``test_top1`` and ``selection_top1`` (also when they were mAP): those read as ``test`` and
``selection`` with the metric ``top1`` they claimed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adaptcli.files import read_json
from adaptcli.protocols.benchmarks import average_lines, benchmark
from adaptcli.runs.results import METRIC_LABELS

SETTINGS_FILE = "suite.json"
RESULTS_FILE = "results.json"
RESULTS_FORMAT = "adaptcli.suite-results/2"


def read_settings(out: Path) -> dict[str, Any]:
    """What ``suite.json`` says the suite in ``out`` was started with (without its protocol line)."""
    stored = read_json(Path(out) / SETTINGS_FILE)
    if not isinstance(stored, dict):
        raise ValueError(f"{SETTINGS_FILE} is not a JSON object")
    stored.pop("protocol", None)
    return stored


def write_settings(out: Path, settings: dict[str, Any], protocol: str) -> None:
    from adaptcli.io import write_json

    write_json(Path(out) / SETTINGS_FILE, {**settings, "protocol": protocol})


def _number(value: Any, what: str) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{what} is {str(value)[:40]!r}, not a number")
    return value


@dataclass
class SuiteRow:
    """One task: its test score in ``metric`` (``top1``, or ``mAP`` for multi-label data), the chosen point
    and its score on the selection split."""

    task: str
    group: str | None = None
    metric: str = "top1"
    test: float | None = None
    chosen: dict[str, Any] = field(default_factory=dict)
    point: str | None = None
    selection_split: str | None = None
    selection: float | None = None
    sweep: dict[str, float] = field(default_factory=dict)
    trainable_params: int | None = None
    trainable_percent: float | None = None
    run: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteRow:
        """A row as any adaptcli wrote it; ``ValueError`` naming a score that is not a number."""
        task = data["task"]
        test_key = "test" if "test" in data else "test_top1"
        selection_key = "selection" if "selection" in data else "selection_top1"
        return cls(task=task, metric=str(data.get("metric", "top1")),
                   test=_number(data.get(test_key), f"{task} {test_key}"), group=data.get("group"),
                   chosen=dict(data.get("chosen") or {}), point=data.get("point"),
                   selection_split=data.get("selection_split"),
                   selection=_number(data.get(selection_key), f"{task} {selection_key}"),
                   sweep=dict(data.get("sweep") or {}),
                   trainable_params=_number(data.get("trainable_params"), f"{task} trainable_params"),
                   trainable_percent=data.get("trainable_percent"), run=data.get("run"))


@dataclass
class SuiteResults:
    """``results.json`` of a suite."""

    benchmark: str
    method: str
    backbone: str | None
    protocol: str | None = None
    grid: dict[str, list[Any]] = field(default_factory=dict)
    tasks: list[SuiteRow] = field(default_factory=list)
    averages: dict[str, Any] = field(default_factory=dict)
    format: str = RESULTS_FORMAT

    @property
    def metric_label(self) -> str:
        """How the test scores are named: ``top-1``, ``mAP``, or both where the tasks differ."""
        labels = dict.fromkeys(METRIC_LABELS.get(row.metric, row.metric) for row in self.tasks)
        return " / ".join(labels) or METRIC_LABELS["top1"]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {"format": out.pop("format"), **out}

    @classmethod
    def from_dict(cls, data: Any) -> SuiteResults:
        """Any ``results.json`` a suite wrote, every field the report reads checked (``ValueError`` naming it)."""
        if not isinstance(data, dict):
            raise ValueError(f"{RESULTS_FILE} is not a JSON object")
        for key in ("benchmark", "method", "backbone"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"{RESULTS_FILE} has no {key} name")
        tasks, averages = data.get("tasks"), data.get("averages")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("task"), str) for t in tasks):
            raise ValueError(f"{RESULTS_FILE}: tasks must be a list of objects with a task name")
        rows = [SuiteRow.from_dict(row) for row in tasks]
        if not isinstance(averages, dict):
            raise ValueError(f"{RESULTS_FILE} has no averages")
        for key in ("mean_over_tasks", "mean_of_group_means", "tasks_present", "tasks_total"):
            _number(averages.get(key), f"averages.{key}")
        if not isinstance(averages.get("complete"), bool):
            raise ValueError(f"{RESULTS_FILE}: averages.complete must be true or false")
        return cls(benchmark=data["benchmark"], method=data["method"], backbone=data["backbone"],
                   protocol=data.get("protocol"), grid=dict(data.get("grid") or {}), tasks=rows, averages=averages,
                   format=str(data.get("format", RESULTS_FORMAT)))

    @classmethod
    def read(cls, out: Path) -> SuiteResults:
        return cls.from_dict(read_json(Path(out) / RESULTS_FILE))


def to_markdown(results: SuiteResults) -> str:
    bench = benchmark(results.benchmark)
    label = results.metric_label
    lines = [f"# {bench.name} suite: {results.method} on {results.backbone}", "",
             f"Protocol: {results.protocol}.", "",
             f"| task | group | test {label} | chosen point | {bench.select_split} {label} | trainable params |",
             "|---|---|---|---|---|---|"]
    for row in results.tasks:
        chosen = ", ".join(f"{k}={v}" for k, v in row.chosen.items()) or "(recipe)"
        sel = f"{row.selection:.2f}" if row.selection is not None else "-"
        lines.append(f"| {row.task} | {row.group or '-'} | {row.test:.2f} | {chosen} | {sel} | "
                     f"{row.trainable_params:,} |")
    lines += ["", *[f"- {line}" for line in average_lines(bench, results.averages)]]
    return "\n".join(lines) + "\n"


def to_csv(results: SuiteResults) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", "group", "test", "metric", "point", "selection", "trainable_params"])
    for row in results.tasks:
        writer.writerow([row.task, row.group or "", f"{row.test:.4f}", row.metric, row.point,
                         "" if row.selection is None else f"{row.selection:.4f}", row.trainable_params])
    avg = results.averages
    label = f"({avg['tasks_present']} of {avg['tasks_total']} tasks{'' if avg['complete'] else ', partial'})"
    if avg["mean_over_tasks"] is not None:
        writer.writerow([f"mean over tasks {label}", "", f"{avg['mean_over_tasks']:.4f}", "", "", "", ""])
    if avg.get("mean_of_group_means") is not None:
        writer.writerow([f"mean of group means {label}", "", f"{avg['mean_of_group_means']:.4f}", "", "", "", ""])
    return buffer.getvalue()


def write_results(out: Path, results: SuiteResults) -> None:
    from adaptcli.io import write_json, write_text

    write_json(Path(out) / RESULTS_FILE, results.to_dict())
    write_text(Path(out) / "results.md", to_markdown(results))
    write_text(Path(out) / "results.csv", to_csv(results))
