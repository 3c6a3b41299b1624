"""``report`` over damaged run and suite folders: a file that is not JSON, truncated, of the wrong shape or
with a field of the wrong type is one line naming the folder, exit 2, and nothing in the folder changes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.reliability.conftest import TINY, checksums, message_lines

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tiny_shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report-damage") / "run"
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", *TINY, "--set",
                                 "train.epochs=1", "--data", str(tiny_shards), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["eval", "--run", str(out), "--split", "test"]).exit_code == 0
    return out


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit(name: str, change: Callable[[dict], object], replace: bool = False) -> Callable[[Path], None]:
    """Change the parsed file in place (``replace``: write what ``change`` returns instead)."""
    def damage(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        result = change(data)
        (folder / name).write_text(json.dumps(result if replace else data))
    return damage


def _fifo(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / name).unlink()
        os.mkfifo(folder / name)
    return damage


RUN_DAMAGE = {
    "summary-truncated": (lambda f: _truncate(f / "summary.json"), "summary.json is not valid JSON"),
    "summary-a-list": (_edit("summary.json", lambda d: [1, 2], replace=True), "summary.json is not a JSON object"),
    "summary-params-a-string": (_edit("summary.json", lambda d: d.update(trainable_params="lots")),
                                "trainable_params is 'lots', not a number"),
    "summary-latin1": (lambda f: (f / "summary.json").write_bytes('{"method": "caf\xe9"'.encode("latin-1")),
                       "summary.json is not valid JSON"),
    "run-json-truncated": (lambda f: _truncate(f / "run.json"), "run.json is not valid JSON"),
    "run-json-no-data": (_edit("run.json", lambda d: d.pop("data")), "missing field 'data'"),
    "eval-nested-garbage": (_edit("eval.json", lambda d: d.update(top1={"a": [1]})), "not a number"),
    "summary-a-fifo": (_fifo("summary.json"), "not a regular file"),
}


@pytest.mark.parametrize("case", list(RUN_DAMAGE))
def test_report_names_a_damaged_run_in_one_line(run, tmp_path, case):
    damage, expected = RUN_DAMAGE[case]
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    damage(folder)
    before = checksums(folder)
    result = runner.invoke(app, ["report", str(folder), "--out", str(tmp_path / "report.md")])
    assert result.exit_code == 2, result.output
    lines = message_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, lines
    assert str(folder) in lines[0] and expected in lines[0], lines[0]
    assert checksums(folder) == before and not (tmp_path / "report.md").exists()


SUITE_DAMAGE = {
    "truncated": ("{\"benchmark\": \"vtab\", \"tasks\": [", "results.json is not valid JSON"),
    "a-string": ("\"results\"", "not a JSON object"),
    "tasks-not-a-list": (json.dumps({"benchmark": "vtab", "method": "m", "backbone": "b", "tasks": 3}),
                         "tasks must be a list"),
    "score-a-string": (json.dumps({"benchmark": "vtab", "method": "m", "backbone": "b",
                                   "tasks": [{"task": "dtd", "test_top1": "high", "trainable_params": 10}],
                                   "averages": {"mean_over_tasks": 1.0, "tasks_present": 1, "tasks_total": 19,
                                                "complete": False}}), "dtd test_top1 is 'high', not a number"),
}


@pytest.mark.parametrize("case", list(SUITE_DAMAGE))
def test_report_names_a_damaged_suite_in_one_line(tmp_path, case):
    text, expected = SUITE_DAMAGE[case]
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "suite.json").write_text("{}")
    (folder / "results.json").write_text(text)
    before = checksums(folder)
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 2, result.output
    lines = message_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, lines
    assert str(folder) in lines[0] and expected in lines[0], lines[0]
    assert checksums(folder) == before
