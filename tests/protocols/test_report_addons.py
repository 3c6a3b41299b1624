"""``report`` names a run's training add-ons after its method (``lora+pace``, ``lora+loraplus``), so runs with
PACE or LoRA+ are told apart from plain LoRA in the table, the plot and ``--against``; plain runs keep their name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.protocols.report import plot_points
from tests.data.standins import build_vtab

runner = CliRunner()
TINY = ["--model", "test_vit", "--recipe", "quick", "--set", "data.train_split=train800",
        "--set", "data.val_split=val200", "--set", "model.img_size=32", "--set", "data.workers=0",
        "--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "train.batch_size=4"]
ADD_ONS = {
    "lora": [],
    "lora+pace": ["--set", "train.pace_lambda=1", "--set", "train.pace_sigma=1.2"],
    "lora+loraplus": ["--set", "train.loraplus_ratio=16"],
    "lora+loraplus+pace": ["--set", "train.loraplus_ratio=16", "--set", "train.pace_lambda=1",
                           "--set", "train.pace_sigma=1.2"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One VTAB task (dtd) as extracted, prepared; a tested 1-epoch LoRA run per add-on setting."""
    root = tmp_path_factory.mktemp("addons")
    build_vtab(root / "vtab-1k", tasks=("dtd",))
    prepared = runner.invoke(app, ["prepare", "vtab", str(root / "vtab-1k"), "--shards", str(root / "shards"),
                                   "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    made = {}
    for name, settings in ADD_ONS.items():
        out = root / name
        result = runner.invoke(app, ["finetune", "--method", "lora", "--data", str(root / "shards" / "dtd"),
                                     "--out", str(out), *TINY, *settings])
        assert result.exit_code == 0, result.output
        tested = runner.invoke(app, ["eval", "--run", str(out), "--split", "test"])
        assert tested.exit_code == 0, tested.output
        made[name] = out
    return made


def test_report_names_the_add_ons(runs, tmp_path):
    result = runner.invoke(app, ["report", *map(str, runs.values()), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {Path(r["run"]).name: r["method"] for r in data["runs"]} == {name: name for name in ADD_ONS}
    assert sorted(plot_points(data)) == sorted(ADD_ONS)  # one point each in the plot
    table = runner.invoke(app, ["report", *map(str, runs.values())], terminal_width=400)
    assert table.exit_code == 0, table.output
    assert "| lora+pace " in table.output and "| lora " in table.output
    plotted = tmp_path / "plot.png"
    assert runner.invoke(app, ["report", *map(str, runs.values()), "--plot", str(plotted)]).exit_code == 0
    assert plotted.stat().st_size > 0


def test_against_matches_plain_lora_only_to_the_papers_lora_row(runs):
    plain = runner.invoke(app, ["report", str(runs["lora"]), "--against", "vpetl", "--format", "json"])
    assert plain.exit_code == 0, plain.output
    (comparison,) = json.loads(plain.output)["against"]
    assert (comparison["method"], comparison["paper"]["row_id"]) == ("lora", "vtab/LoRA")

    pace = runner.invoke(app, ["report", str(runs["lora+pace"]), "--against", "vpetl"], terminal_width=400)
    assert pace.exit_code == 2, pace.output
    assert len(pace.output.strip().splitlines()) == 1, pace.output
    assert "no row of vpetl is method lora+pace; pick one with --row" in pace.output

    named = runner.invoke(app, ["report", str(runs["lora+pace"]), "--against", "vpetl", "--row", "vtab/LoRA",
                                "--format", "json"])
    assert named.exit_code == 0, named.output
    (comparison,) = json.loads(named.output)["against"]
    assert (comparison["method"], comparison["paper"]["row_id"]) == ("lora+pace", "vtab/LoRA")


def test_a_suite_is_named_by_its_runs_add_ons(runs, tmp_path):
    """A suite's row (and its --against side) reads the add-ons from its runs' configuration."""
    shards = runs["lora"].parent / "shards"
    out = tmp_path / "suite"
    result = runner.invoke(app, ["suite", "vtab", "--method", "lora", "--data", str(shards), "--out", str(out),
                                 "--model", "test_vit", "--recipe", "quick", "--set", "model.img_size=32",
                                 "--set", "data.workers=0", "--set", "train.epochs=1", "--sweep", "train.lr=1e-3",
                                 "--set", "train.pace_lambda=1", "--set", "train.pace_sigma=1.2", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = runner.invoke(app, ["report", str(out), "--format", "json"])
    assert report.exit_code == 0, report.output
    assert [r["method"] for r in json.loads(report.output)["suites"]["rows"]] == ["lora+pace"]
    against = runner.invoke(app, ["report", str(out), "--against", "vpetl"], terminal_width=400)
    assert against.exit_code == 2 and "no row of vpetl is method lora+pace" in against.output, against.output
