"""``adaptcli report`` over the suite's run folders and two suites side by side (paper-style table)."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.protocols.conftest import POINTS, TASKS

runner = CliRunner()


@pytest.fixture(scope="module")
def linear_suite(vtab_suite, tmp_path_factory):
    """A second method with a one-point grid: no sweep runs, only the final runs."""
    out = tmp_path_factory.mktemp("linear") / "suite"
    result = runner.invoke(app, ["suite", "vtab", "--method", "linear", "--data", str(vtab_suite.shards),
                                 "--out", str(out), "--model", "test_vit", "--recipe", "quick",
                                 "--set", "model.img_size=32", "--set", "data.workers=0", "--set", "train.epochs=1",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert not any((out / task / "sweep").exists() for task in TASKS)
    return out


def test_report_rows_tables_and_plot(vtab_suite, linear_suite, tmp_path):
    runs = [vtab_suite.out / t / "final" for t in TASKS] + [vtab_suite.out / TASKS[0] / "sweep" / p for p in POINTS]
    args = ["report", *map(str, runs), str(vtab_suite.out), str(linear_suite)]
    for fmt in ("md", "csv", "json"):
        result = runner.invoke(app, [*args, "--format", fmt, "--out", str(tmp_path / f"report.{fmt}")])
        assert result.exit_code == 0, result.output
    plotted = runner.invoke(app, [*args, "--plot", str(tmp_path / "plot.png")])
    assert plotted.exit_code == 0, plotted.output

    data = json.loads((tmp_path / "report.json").read_text())
    rows = {row["run"]: row for row in data["runs"]}
    for task in TASKS:
        final = vtab_suite.out / task / "final"
        row = rows[str(final)]
        assert row["test_top1"] == json.loads((final / "eval.json").read_text())["top1"]
        summary = json.loads((final / "summary.json").read_text())
        for key in ("trainable_params", "trainable_percent", "train_seconds", "samples_per_second", "peak_memory_mb"):
            assert row[key] == summary[key] and row[key] is not None
        assert row["data_wait"] == summary["data_wait"] and 0 <= row["data_wait"] <= 1
        assert row["method"] == "arc" and row["backbone"] == "test_vit" and row["dataset"] == f"vtab/{task}"
    sweep = rows[str(vtab_suite.out / TASKS[0] / "sweep" / POINTS[0])]
    assert sweep["test_top1"] is None  # scored on val200 only: test is never looked at while tuning
    assert sweep["val_top1"] == json.loads((vtab_suite.out / TASKS[0] / "sweep" / POINTS[0] / "eval.json").read_text())["top1"]

    table = data["suites"]
    assert table["benchmark"] == "vtab" and table["tasks"] == list(TASKS)
    assert [r["method"] for r in table["rows"]] == ["arc", "linear"]
    for row, suite in zip(table["rows"], (vtab_suite.out, linear_suite)):
        results = json.loads((suite / "results.json").read_text())
        assert row["mean_over_tasks"] == results["averages"]["mean_over_tasks"]
        assert row["tasks"] == {r["task"]: r["test"] for r in results["tasks"]}
        assert {r["metric"] for r in results["tasks"]} == {"top1"}

    md = (tmp_path / "report.md").read_text()
    header = "| run | method | backbone | dataset | trainable_params | trainable_percent | metric | val | test | " \
             "train_seconds | samples_per_second | data_wait | peak_memory_mb |"
    assert header in md
    final = vtab_suite.out / TASKS[0] / "final"
    shown = next(line for line in md.splitlines() if line.startswith(f"| {final} |")).split(" | ")
    wait = json.loads((final / "summary.json").read_text())["data_wait"]
    assert shown[header.split(" | ").index("data_wait")] == f"{wait:.0%}"
    assert "| method | params | dtd | eurosat | kitti | mean over tasks | mean of group means |" in md
    assert "(3/19, partial)" in md
    table_rows = list(csv.reader((tmp_path / "report.csv").open()))
    assert table_rows[0][0] == "run" and len(table_rows) == 1 + len(runs) + 1 + 2

    with Image.open(tmp_path / "plot.png") as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
        image.load()


def test_report_shows_a_dash_for_a_run_without_data_wait(vtab_suite, tmp_path):
    """A run finished before data_wait was recorded (its summary.json lacks the key) still reports."""
    old = tmp_path / "old-run"
    shutil.copytree(vtab_suite.out / TASKS[0] / "final", old)
    summary = json.loads((old / "summary.json").read_text())
    del summary["data_wait"]
    (old / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["report", str(old), "--format", "md"])
    assert result.exit_code == 0, result.output
    head, _, row = result.output.splitlines()[:3]
    column = head.split(" | ").index("data_wait")
    assert row.split(" | ")[column] == "-"
    assert row.split(" | ")[column - 1] == f"{summary['samples_per_second']:,.2f}"
    data = json.loads(runner.invoke(app, ["report", str(old), "--format", "json"]).output)
    assert data["runs"][0]["data_wait"] is None


def test_report_refuses_a_folder_that_is_neither(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "neither a run folder" in result.output
