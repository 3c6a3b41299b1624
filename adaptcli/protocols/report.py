"""``adaptcli report``: one row per run, suites with their averages, suites side by side as a paper table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from statistics import mean
from typing import Any

from adaptcli.errors import AdaptError
from adaptcli.protocols import against as versus
from adaptcli.protocols.benchmarks import benchmark
from adaptcli.protocols.method_label import method_label, suite_method_label
from adaptcli.protocols.papers import paper
from adaptcli.protocols.results import RESULTS_FILE, SETTINGS_FILE, SuiteResults
from adaptcli.runs.folder import RunDir
from adaptcli.runs.info import RunInfo
from adaptcli.runs.results import EvalResult, TrainSummary

RUN_COLUMNS = ["run", "method", "backbone", "dataset", "trainable_params", "trainable_percent", "metric", "val",
               "test", "train_seconds", "samples_per_second", "data_wait", "peak_memory_mb"]


def run_row(path: Path) -> dict[str, Any]:
    """The report row of one run folder: validation and test score in the run's metric (top-1, or
    mAP for multi-label data); test from its eval.json when that holds the test split."""
    run = RunDir(path)
    info, config = run.info(), run.config()
    summary = TrainSummary.read(run.summary_file) if run.summary_file.exists() else TrainSummary()
    evaluated = EvalResult.read(run.eval_file) if run.eval_file.exists() else None
    metric = summary.metric
    score = getattr(evaluated, metric, None)
    split = evaluated.split if evaluated is not None else None
    test = score if split == config.data.test_split else None
    val = summary.best_val
    if val is None and split not in (None, config.data.test_split):
        val = score
    single_label = metric == "top1"
    return {
        "run": str(path), "method": method_label(config), "backbone": config.model.name,
        "dataset": _dataset(info),
        "trainable_params": summary.trainable_params, "trainable_percent": summary.trainable_percent,
        "metric": metric, "val": val, "test": test,
        "val_top1": val if single_label else None, "test_top1": test if single_label else None,
        "train_seconds": summary.train_seconds,
        "samples_per_second": summary.samples_per_second, "data_wait": summary.data_wait,
        "peak_memory_mb": summary.peak_memory_mb,
    }


def _dataset(info: RunInfo) -> str:
    """The source name, with the shard folder's name when it says more (a VTAB task: ``vtab/dtd``), and
    the data's variant where it is not the extracted folders."""
    name, folder = info.dataset or "", info.data_dir.name
    variant = versus.manifest_variant(info.data_dir / "dataset.json")  # VTAB from TFDS or V-PETL: "vtab/dtd (tfds)"
    shown = f"{name}/{folder}" if name and folder != name else (name or folder)
    return shown + (f" ({variant})" if variant not in (versus.UNKNOWN, "folder") else "")


#: Numbers a report row or suite carries: each must be a number or missing, never a string or a list.
_ROW_NUMBERS = ("trainable_params", "trainable_percent", "val", "test", "train_seconds", "samples_per_second",
                "data_wait", "peak_memory_mb")


def _number(value: Any, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{what} is {str(value)[:40]!r}, not a number")


def _checked_row(row: dict[str, Any]) -> dict[str, Any]:
    for key in _ROW_NUMBERS:
        _number(row[key], key)
    return row


def load(paths: list[Path]) -> tuple[list[dict[str, Any]], list[tuple[Path, SuiteResults]]]:
    """(run rows, suite results) of the given run folders and suite folders; a folder with a damaged
    file (not JSON, truncated, a field of the wrong type) is a one-line error naming it."""
    runs, suites = [], []
    for path in paths:
        path = Path(path)
        try:
            if (path / RESULTS_FILE).is_file() and (path / SETTINGS_FILE).is_file():
                suites.append((path, SuiteResults.read(path)))
            elif RunDir(path).is_run():
                runs.append(_checked_row(run_row(path)))
            else:
                raise AdaptError(f"{path} is neither a run folder (config.yaml + run.json) nor a suite folder "
                                 "(suite.json + results.json); pass folders made by finetune or suite")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise AdaptError(f"{path} has a damaged file ({reason[:200]}); run the command that wrote it again, "
                             "or leave this folder out of the report") from None
    if not runs and not suites:
        raise AdaptError("report needs at least one run or suite folder")
    return runs, suites


def suite_table(suites: list[tuple[Path, SuiteResults]]) -> dict[str, Any] | None:
    """Tasks as columns, one row per suite (method), both averages at the end; suites of one benchmark."""
    if not suites:
        return None
    names = {s.benchmark for _, s in suites}
    if len(names) > 1:
        raise AdaptError(f"suites of different benchmarks ({', '.join(sorted(names))}); report one benchmark at a time")
    bench = benchmark(names.pop())
    seen = {row.task for _, s in suites for row in s.tasks}
    tasks = [t for t in bench.tasks if t in seen] + sorted(seen - set(bench.tasks))
    rows = []
    for path, s in suites:
        by_task = {row.task: row for row in s.tasks}
        params = [row.trainable_params for row in s.tasks]
        avg = s.averages
        rows.append({"method": suite_method_label(path, s), "backbone": s.backbone, "suite": str(path),
                     "params": mean(params) if params else None,
                     "tasks": {t: by_task[t].test if t in by_task else None for t in tasks},
                     "mean_over_tasks": avg["mean_over_tasks"], "mean_of_group_means": avg.get("mean_of_group_means"),
                     "tasks_present": avg["tasks_present"], "tasks_total": avg["tasks_total"],
                     "complete": avg["complete"]})
    labels = dict.fromkeys(label for _, s in suites for label in s.metric_label.split(" / "))
    return {"benchmark": bench.name, "metric": " / ".join(labels), "tasks": tasks, "rows": rows}


def report(paths: list[Path], against: str | None = None, row: str | None = None,
           tolerance: float | None = None) -> dict[str, Any]:
    """The report's data; with ``against``, each suite (and the runs, by dataset) beside that paper's row."""
    if not against and (row is not None or tolerance is not None):
        raise AdaptError(f"{'--row' if row is not None else '--tolerance'} goes with --against PAPER; add it or leave it out")
    stored = paper(against) if against else None  # an unknown name is refused before any folder is read
    runs, suites = load(paths)
    data: dict[str, Any] = {"format": "adaptcli.report/1", "runs": runs, "suites": suite_table(suites)}
    if stored is not None:
        sides = [versus.suite_side(path, results) for path, results in suites] + versus.runs_side(runs)
        if not sides:
            raise AdaptError(f"--against {against}: no suite and no run with a test score; "
                             "evaluate the runs on their test split first (eval --split test)")
        tol = versus.DEFAULT_TOLERANCE if tolerance is None else tolerance
        data["against"] = [versus.compare(side, stored, row, tol) for side in sides]
    return data


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(row: dict[str, Any], column: str) -> str:
    """A run row's Markdown cell; ``data_wait`` (a share of the training wall time) as a percentage."""
    value = row[column]
    if column == "data_wait" and value is not None:
        return f"{value:.0%}"
    return _fmt(value)


def to_markdown(data: dict[str, Any]) -> str:
    lines: list[str] = []
    if data["runs"]:
        lines += ["| " + " | ".join(RUN_COLUMNS) + " |", "|" + "---|" * len(RUN_COLUMNS)]
        lines += ["| " + " | ".join(_cell(r, c) for c in RUN_COLUMNS) + " |" for r in data["runs"]]
    table = data["suites"]
    if table:
        head = ["method", "params", *table["tasks"], "mean over tasks", "mean of group means"]
        lines += ["" if lines else "", f"{table['benchmark']} (test {table['metric']})", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in table["rows"]:
            count = f" ({r['tasks_present']}/{r['tasks_total']}{'' if r['complete'] else ', partial'})"
            cells = [r["method"], _fmt(r["params"], 0), *(_fmt(r["tasks"][t]) for t in table["tasks"]),
                     _fmt(r["mean_over_tasks"]) + count, _fmt(r["mean_of_group_means"]) + count]
            lines.append("| " + " | ".join(cells) + " |")
    for comparison in data.get("against") or []:
        lines += ["", versus.to_markdown(comparison).rstrip("\n")]
    return "\n".join(line for line in lines if line is not None).lstrip("\n") + "\n"


def to_csv(data: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if data["runs"]:
        writer.writerow(RUN_COLUMNS)
        for r in data["runs"]:
            writer.writerow(["" if r[c] is None else r[c] for c in RUN_COLUMNS])
    table = data["suites"]
    if table:
        writer.writerow(["method", "params", *table["tasks"], "mean_over_tasks", "mean_of_group_means",
                         "tasks_present", "tasks_total"])
        for r in table["rows"]:
            writer.writerow([r["method"], r["params"], *("" if r["tasks"][t] is None else r["tasks"][t]
                                                         for t in table["tasks"]),
                             r["mean_over_tasks"], "" if r["mean_of_group_means"] is None else r["mean_of_group_means"],
                             r["tasks_present"], r["tasks_total"]])
    if data.get("against"):
        writer.writerow(versus.CSV_COLUMNS)
        for comparison in data["against"]:
            writer.writerows(versus.csv_rows(comparison))
    return buffer.getvalue()


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv":
        return to_csv(data)
    if fmt == "md":
        return to_markdown(data)
    raise AdaptError(f"--format {fmt}: choose md, csv or json")


def plot_points(data: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """One (trainable parameters, accuracy) point per method: a suite's mean over tasks, or the mean of
    its runs' test score (validation where a run has no test evaluation) in their metric."""
    points: dict[str, list[tuple[float, float]]] = {}
    for r in data["runs"]:
        accuracy = r["test"] if r["test"] is not None else r["val"]
        if accuracy is not None and r["trainable_params"]:
            points.setdefault(r["method"], []).append((r["trainable_params"], accuracy))
    for r in (data["suites"] or {}).get("rows", []):
        if r["mean_over_tasks"] is not None and r["params"]:
            points.setdefault(f"{r['method']} (suite)", []).append((r["params"], r["mean_over_tasks"]))
    return {m: (mean(p for p, _ in v), mean(a for _, a in v)) for m, v in points.items()}


def plot(data: dict[str, Any], path: Path) -> Path:
    """Accuracy against trainable parameters (log x), one labelled point per method; with ``--against``,
    ours and the paper's score side by side per task."""
    if data.get("against"):
        return versus.plot(data["against"], path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adaptcli.io import write_figure

    points = plot_points(data)
    if not points:
        raise AdaptError("--plot: no run has an accuracy and a parameter count yet; evaluate the runs first")
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for i, (method, (params, accuracy)) in enumerate(sorted(points.items())):
        ax.scatter(params, accuracy, s=60, zorder=3)
        ax.annotate(method, (params, accuracy), textcoords="offset points", xytext=(6, 6 if i % 2 == 0 else -14),
                    fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("top-1 (%)")
    ax.grid(True, which="both", alpha=0.3)
    return write_figure(path, fig)
