"""A recipe saved by ``adaptcli config`` plans the same suite and the same run as the shipped recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import recipe_sweep
from adaptcli.protocols.grid import grid_points
from adaptcli.protocols.suite import SuiteSpec, final_step, sweep_steps
from tests.data.standins import build_vtab

TASKS = ("dtd", "eurosat", "kitti")  # eurosat and kitti have their own SSF settings, dtd SSF's common ones
SMALL = ["--model", "test_vit", "--set", "model.img_size=32"]
runner = CliRunner()


@pytest.fixture(scope="module")
def vtab_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("saved-recipe")
    build_vtab(root / "vtab-1k", tasks=TASKS)
    prepared = runner.invoke(app, ["prepare", "vtab", str(root / "vtab-1k"), "--shards", str(root / "shards"),
                                   "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    return root / "shards"


def save_config(path: Path, method: str, *extra: str) -> Path:
    result = runner.invoke(app, ["config", "--recipe", "vtab", "--method", method, *extra])
    assert result.exit_code == 0, result.output
    path.write_text(result.stdout)
    return path


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def planned_steps(spec: SuiteSpec) -> list:
    points = grid_points(spec.grid)
    return [step for task in TASKS for step in (*sweep_steps(spec, task, points), final_step(spec, task, points[0]))]


@pytest.mark.parametrize(("method", "extra", "points"), [
    ("ssf", [], 1),                                    # no sweep, per-task settings
    ("lora", [], 3),                                   # the method's own 3-point lr grid
    ("ssf", ["--set", "train.weight_decay=0.1"], 1),  # a --set holds for every task, as it does in suite
])
def test_suite_from_a_saved_recipe_plans_what_the_shipped_recipe_plans(vtab_shards, tmp_path, method, extra, points):
    saved = save_config(tmp_path / f"{method}.yaml", method, *extra)
    suite = ["suite", "vtab", "--method", method, "--data", str(vtab_shards), "--out", str(tmp_path / "suite"),
             "--dry-run"]
    shipped_plan = invoke(*suite, *extra)
    assert shipped_plan == invoke(*suite, "--recipe", str(saved))
    assert f"{len(TASKS)} task(s), {points} sweep point(s)" in shipped_plan

    shipped = SuiteSpec("vtab", method, vtab_shards, tmp_path / "suite", "vtab", [e for e in extra if e != "--set"],
                        recipe_sweep("vtab", method))
    from_file = SuiteSpec("vtab", method, vtab_shards, tmp_path / "suite", str(saved), [],
                          recipe_sweep(str(saved), method))
    assert from_file.grid == shipped.grid
    steps = planned_steps(shipped)
    assert planned_steps(from_file) == steps
    assert len(steps) == len(TASKS) * (points + (points > 1))
    if method == "ssf":  # the per-task values reach the runs (a --set wins over them, as in suite)
        configs = {step.task: step.config.train for step in steps}
        assert configs["eurosat"].lr == 3.0e-3 and configs["kitti"].lr == 1.0e-2
        assert {c.weight_decay for c in configs.values()} == ({0.1} if extra else {5.0e-5, 5.0e-2})


@pytest.mark.parametrize("method", ["ssf", "lora"])
def test_finetune_from_a_saved_recipe_plans_the_shipped_run(vtab_shards, tmp_path, method):
    saved = save_config(tmp_path / f"{method}.yaml", method, *SMALL)
    finetune = ["finetune", "--method", method, "--data", str(vtab_shards / "dtd"), "--out", str(tmp_path / "run"),
                "--dry-run"]
    shipped_plan = invoke(*finetune, "--recipe", "vtab", *SMALL)
    assert shipped_plan == invoke(*finetune, "--recipe", str(saved))
    assert "test_vit" in shipped_plan
