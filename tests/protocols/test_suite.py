"""``adaptcli suite vtab``: tuning on val200, the final run on train800val200, both averages, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from statistics import mean

import pytest
import yaml
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.protocols.benchmarks import averages, benchmark
from tests.protocols.conftest import POINTS, TASKS, suite_command

GROUP = {"dtd": "natural", "eurosat": "specialized", "kitti": "structured"}


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_dry_run_trains_nothing_and_lists_every_run(vtab_suite):
    text = vtab_suite.dry_run_output
    assert "3 task(s), 2 sweep point(s)" in text and "9 run(s) to train or evaluate" in text
    for task in TASKS:
        for point in POINTS:
            assert f"{task}/sweep/{point}: to train" in text
    # It was run before anything else: it created nothing (the out folder came from the later runs).
    again = CliRunner().invoke(app, suite_command(vtab_suite.shards, vtab_suite.out, "--dry-run"))
    assert again.exit_code == 0
    assert "0 run(s) to train or evaluate" in again.output
    assert again.output.count("done (skipped)") == 9


def test_chosen_point_is_the_best_on_val200_and_final_trains_on_train800val200(vtab_suite):
    results = read(vtab_suite.out / "results.json")
    rows = {row["task"]: row for row in results["tasks"]}
    assert set(rows) == set(TASKS)
    for task in TASKS:
        sweep = {}
        for point in POINTS:
            run = vtab_suite.out / task / "sweep" / point
            evaluated = read(run / "eval.json")
            assert evaluated["split"] == "val200" and evaluated["samples"] == 3
            config = yaml.safe_load((run / "config.yaml").read_text())
            assert config["data"]["train_split"] == "train800"
            assert read(run / "summary.json")["steps"] == 8  # 8 images, batch 2, 2 epochs
            sweep[point] = evaluated["top1"]
        best = max(sweep.values())
        expected = next(p for p in POINTS if sweep[p] == best)  # ties: the first in grid order
        assert rows[task]["point"] == expected
        assert rows[task]["selection"] == best and rows[task]["metric"] == "top1"
        final = vtab_suite.out / task / "final"
        config = yaml.safe_load((final / "config.yaml").read_text())
        assert config["data"]["train_split"] == "train800val200" and config["data"]["val_split"] is None
        assert config["train"]["lr"] == {"lr-1e-05": 1e-5, "lr-0.03": 0.03}[expected]
        assert read(final / "summary.json")["steps"] == 10  # 11 images (train800 + val200), 2 epochs
        test = read(final / "eval.json")
        assert test["split"] == "test" and test["samples"] == 5
        assert rows[task]["test"] == test["top1"]
        assert rows[task]["group"] == GROUP[task]


def test_choose_takes_the_best_point_and_the_first_on_ties():
    from adaptcli.protocols.grid import grid_points
    from adaptcli.protocols.suite import choose

    points = grid_points({"train.lr": [0.001, 0.01, 0.1]})
    steps = [type("S", (), {"point": p})() for p in points]
    assert choose(steps, {"lr-0.001": 50.0, "lr-0.01": 70.0, "lr-0.1": 70.0}).name == "lr-0.01"
    assert choose(steps, {"lr-0.001": 50.0, "lr-0.01": 40.0, "lr-0.1": 60.0}).name == "lr-0.1"
    assert [p.name for p in grid_points({"train.lr": [1, 2], "train.weight_decay": [0, 0.1]})] == [
        "lr-1_weight_decay-0", "lr-1_weight_decay-0.1", "lr-2_weight_decay-0", "lr-2_weight_decay-0.1"]


def test_both_vtab_averages_by_hand(vtab_suite):
    results = read(vtab_suite.out / "results.json")
    test = {t: read(vtab_suite.out / t / "final" / "eval.json")["top1"] for t in TASKS}
    avg = results["averages"]
    assert avg["mean_over_tasks"] == pytest.approx(sum(test.values()) / 3)
    groups = {g: [test[t] for t in TASKS if GROUP[t] == g] for g in ("natural", "specialized", "structured")}
    assert avg["mean_of_group_means"] == pytest.approx(sum(sum(v) / len(v) for v in groups.values()) / 3)
    assert avg["tasks_present"] == 3 and avg["tasks_total"] == 19 and avg["complete"] is False
    assert {g: v["present"] for g, v in avg["groups"].items()} == {"natural": 1, "specialized": 1, "structured": 1}
    md = (vtab_suite.out / "results.md").read_text()
    assert "mean over tasks (3 of 19)" in md and "PARTIAL" in md and "mean of the 3 group means" in md
    rows = list(csv.reader((vtab_suite.out / "results.csv").open()))
    assert rows[0][:4] == ["task", "group", "test", "metric"] and {r[3] for r in rows[1:4]} == {"top1"}
    assert {r[0] for r in rows[1:4]} == set(TASKS)
    assert float(rows[4][2]) == pytest.approx(avg["mean_over_tasks"], abs=1e-4)


def test_the_two_averages_differ_when_groups_are_uneven():
    vtab = benchmark("vtab")
    scores = {"cifar": 90.0, "dtd": 70.0, "eurosat": 95.0, "kitti": 40.0}
    avg = averages(vtab, scores)
    assert avg["mean_over_tasks"] == pytest.approx((90 + 70 + 95 + 40) / 4)
    assert avg["mean_of_group_means"] == pytest.approx(((90 + 70) / 2 + 95 + 40) / 3)
    full = averages(vtab, {t: float(i) for i, t in enumerate(vtab.tasks)})
    assert full["complete"] is True and full["tasks_present"] == 19
    assert full["mean_of_group_means"] == pytest.approx(mean([mean(range(0, 7)), mean(range(7, 11)),
                                                              mean(range(11, 19))]))


def test_a_killed_suite_continues_without_retraining_finished_runs(vtab_suite):
    assert vtab_suite.killed_code == -9
    first = vtab_suite.out / TASKS[0] / "sweep" / POINTS[0]
    for name, mtime in vtab_suite.first_files.items():
        assert (first / name).stat().st_mtime_ns == mtime, name
    lines = vtab_suite.rerun_output.splitlines()
    first_line = next(line for line in lines if "[1/9]" in line)
    assert "(evaluated)" in first_line or "(done before, skipped)" in first_line
    assert sum("(trained)" in line or "resumed" in line for line in lines) <= 8


def test_a_changed_setting_is_refused_in_one_line(vtab_suite):
    result = CliRunner().invoke(app, suite_command(vtab_suite.shards, vtab_suite.out, "--set", "method.dim=4"))
    assert result.exit_code == 2
    assert "different --set method.dim (stored not set, now 4)" in result.output and "--overwrite" in result.output
    assert "Traceback" not in result.output


def test_unknown_task_and_bad_sweep_are_one_line_errors(vtab_suite, tmp_path):
    runner = CliRunner()
    bad_task = runner.invoke(app, suite_command(vtab_suite.shards, tmp_path / "x", "--tasks", "dtd,cifar"))
    assert bad_task.exit_code == 2 and "cifar not prepared" in bad_task.output
    bad_key = runner.invoke(app, ["suite", "vtab", "--method", "arc", "--data", str(vtab_suite.shards), "--out",
                                  str(tmp_path / "y"), "--sweep", "train.lrr=1,2"])
    assert bad_key.exit_code == 2 and "did you mean 'train.lr'" in bad_key.output


@pytest.mark.parametrize("method, points", [("arc", "lr-0.003; lr-0.01; lr-0.03"), ("vpt_deep", "lr-0.25; lr-0.5; lr-1")])
def test_the_default_grid_comes_from_the_recipe(vtab_suite, tmp_path, method, points):
    result = CliRunner().invoke(app, ["suite", "vtab", "--method", method, "--data", str(vtab_suite.shards),
                                      "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    named = result.output.split("points: ")[1].splitlines()[0]
    assert "; ".join(part.split(" (")[0] for part in named.split("; ")) == points
    assert "12 run(s) to train or evaluate" in result.output and not (tmp_path / "s").exists()


def test_adapter_plus_dry_run_shows_the_official_settings_and_no_sweep(vtab_suite, tmp_path):
    result = CliRunner().invoke(app, ["suite", "vtab", "--method", "adapter_plus", "--data", str(vtab_suite.shards),
                                      "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "one point: tuning is skipped" in result.output and "/sweep/" not in result.output
    settings = result.output.split("settings: ")[1].splitlines()[0]
    assert settings.startswith("adamw lr 0.001 wd 0.0001, batch 64, 100 epochs (10 warm-up from 1e-05, cosine "
                               "per epoch to 1e-06), drop path 0.1, clip None, smoothing 0")
    assert "method adapter_plus (bottleneck=8, drop_path=0.1" in settings
    assert "3 run(s) to train or evaluate" in result.output and not (tmp_path / "s").exists()


def test_the_dry_run_settings_show_pace_and_loraplus(vtab_suite, tmp_path):
    """vtab_pace turns PACE on for lora: the settings line says so, as it names every other training add-on."""
    args = ["suite", "vtab", "--method", "lora", "--data", str(vtab_suite.shards), "--out", str(tmp_path / "s"),
            "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--recipe", "vtab_pace", "--set", "train.loraplus_ratio=16"])
    assert result.exit_code == 0, result.output
    settings = result.output.split("settings: ")[1].splitlines()[0]
    assert ", PACE lambda 1 sigma 1.2, LoRA+ ratio 16; method lora" in settings
    plain = CliRunner().invoke(app, [*args, "--recipe", "vtab"])
    assert plain.exit_code == 0 and "PACE" not in plain.output and "LoRA+" not in plain.output, plain.output


def test_ssf_trains_each_task_with_its_scripts_values(vtab_suite, tmp_path):
    result = CliRunner().invoke(app, ["suite", "vtab", "--method", "ssf", "--data", str(vtab_suite.shards),
                                      "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "one point: tuning is skipped" in result.output
    assert "110 epochs (10 warm-up from 1e-07, cosine per epoch to 1e-08, 10 at min lr)" in result.output
    # dtd is the first task (lr 5e-3, wd 5e-5, drop path 0); eurosat and kitti differ (their scripts)
    assert "adamw lr 0.005 wd 5e-05, batch 64" in result.output.split("settings: ")[1].splitlines()[0]
    assert "eurosat settings: adamw lr 0.003 wd 0.05, batch 64" in result.output
    assert "drop path 0.2" in result.output.split("eurosat settings: ")[1].splitlines()[0]
    assert "kitti settings: adamw lr 0.01 wd 5e-05" in result.output
