"""``report SUITE --against PAPER``: the stored tables against the seed papers' text, and the report on a small
suite: per task ours / theirs / difference with the source, the refusals, the plot."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from statistics import mean

import pytest
from PIL import Image
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.manifest import Manifest, write_manifest
from adaptcli.protocols.against import data_variant
from adaptcli.protocols.benchmarks import BENCHMARKS, VTAB_GROUPS
from adaptcli.protocols.papers import not_stored, stored_papers
from tests.data.standins import build_vtab

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
#: The seed papers as text: $ADAPTCLI_SEEDS, else shared/seeds beside the checkout (or beside its worktree folder).
SEEDS = next((p for p in (Path(os.environ.get("ADAPTCLI_SEEDS", "/nonexistent")), ROOT.parent / "shared" / "seeds",
                          ROOT.parents[1] / "shared" / "seeds") if p.is_dir()), ROOT.parent / "shared" / "seeds")
ADAPTFORMER_SEED = SEEDS / "001_400c1c71ad7fa976.txt"
ARC_SEED = SEEDS / "002_594d08e355a6d9b0.txt"
REFERENCE = SEEDS.parent / "reference" / "methods.md"
TASKS = ("dtd", "eurosat", "kitti")


def seed_table(text: str, caption: str) -> dict[str, list[float]]:
    """Row name -> the five scores of one AdaptFormer table as the seed text prints it (``85.90 (-2.38)``)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(caption))
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith(("Table", "Figure", "Results", "A.", "VPT [51] achieves")):
            break
        cells = line.split("\t")
        if len(cells) == 7 and re.match(r"\d", cells[1]):
            rows[cells[0]] = [float(re.match(r"\d+\.\d+", c.strip()).group()) for c in cells[2:]]
    return rows


@pytest.mark.skipif(not ADAPTFORMER_SEED.is_file(), reason=f"the seed papers are not at {SEEDS} (CI clones the repo only)")
def test_adaptformer_numbers_are_the_seed_papers_tables():
    text = ADAPTFORMER_SEED.read_text(encoding="utf-8")
    stored = {t.table: t for t in stored_papers()["adaptformer"].tables}
    assert set(stored) == {"Table 1", "Table 6", "Table 7"}
    for caption, table in stored.items():
        printed = seed_table(text, caption + ":")
        assert printed, caption
        assert {r.row for r in table.rows} == set(printed), caption
        for row in table.rows:
            assert list(row.tasks) == ["cifar100", "svhn", "food101", "ssv2", "hmdb51"]
            assert list(row.tasks.values()) == printed[row.row], (caption, row.row)


@pytest.mark.skipif(not ARC_SEED.is_file(), reason=f"the seed papers are not at {SEEDS} (CI clones the repo only)")
def test_arc_stores_no_task_scores_while_its_seed_holds_no_table():
    text = ARC_SEED.read_text(encoding="utf-8")
    has_table = re.search(r"caltech101?\s+[\d.]+", text, re.IGNORECASE) is not None
    stored = [row for table in stored_papers()["arc"].tables for row in table.rows]
    assert has_table == any(row.tasks for row in stored), "ARC's table is in its seed now: transcribe its tasks"


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"the method reference is not at {REFERENCE} (CI clones the repo only)")
def test_arc_and_pace_numbers_are_the_references_quotes():
    text = " ".join(REFERENCE.read_text(encoding="utf-8").split())
    arc = re.search(r"ARC, ViT-B/16 ImageNet-21k: VTAB-1k mean of 19 tasks ([\d.]+) \(group means ([\d.]+) / ([\d.]+) / "
                    r"([\d.]+)\), FGVC mean ([\d.]+)", text)
    pace = re.search(r"natural ([\d.]+) / specialized ([\d.]+) / structured ([\d.]+), ([\d.]+) as the mean of the group "
                     r"means \(its Table 1\); FGVC mean ([\d.]+) \(Table 3\)", text)
    assert arc and pace
    for paper, found, (avg, natural, specialized, structured, fgvc) in (
            ("arc", arc, (1, 2, 3, 4, 5)), ("pace", pace, (4, 1, 2, 3, 5))):
        vtab, fgvc_table = stored_papers()[paper].tables
        (row,), (fgvc_row,) = vtab.rows, fgvc_table.rows
        assert row.groups == {"natural": float(found[natural]), "specialized": float(found[specialized]),
                              "structured": float(found[structured])}
        assert (row.average, fgvc_row.average) == (float(found[avg]), float(found[fgvc]))


def test_stored_tables_are_consistent():
    """Runs everywhere: every task is one of its benchmark's, every method a registered one, every printed
    average is the average of the row's printed scores (to the paper's rounding)."""
    from adaptcli.methods.registry import method_names

    papers = stored_papers()
    assert {"adaptformer", "arc", "pace", "vpetl"} <= set(papers) and not set(papers) & set(not_stored())
    for paper in papers.values():
        assert paper.tables and paper.note
        for table in paper.tables:
            assert table.source and table.backbone and table.data and table.rows
            ids = [table.row_id(r) for r in table.rows]
            assert len(ids) == len(set(ids)), ids
            for row in table.rows:
                assert row.method is None or row.method in method_names(), row.method
                assert all(0 <= v <= 100 for v in row.tasks.values())
                if table.benchmark and row.tasks:
                    assert set(row.tasks) == set(BENCHMARKS.get(table.benchmark).tasks), row.row
                if row.groups:
                    assert set(row.groups) == set(VTAB_GROUPS) and not row.tasks, row.row
                    sizes = {g: len(tasks) for g, tasks in VTAB_GROUPS.items()}
                    by_rule = {"mean_of_group_means": mean(row.groups.values()),
                               "mean_over_tasks": sum(sizes[g] * v for g, v in row.groups.items()) / 19}
                    # group means printed to one decimal: their average is known to +-0.05
                    assert abs(by_rule[table.average] - row.average) <= 0.051, (paper.name, row.row)
                if table.average == "mean_over_tasks" and row.average is not None and row.tasks:
                    assert abs(mean(row.tasks.values()) - row.average) <= 0.0051, (paper.name, row.row)
                if table.average == "mean_of_group_means" and row.average is not None and row.tasks:
                    groups = [mean(row.tasks[t] for t in tasks) for tasks in VTAB_GROUPS.values()]
                    assert abs(mean(groups) - row.average) <= 0.0051, (paper.name, row.row)


def test_the_help_lists_every_stored_paper():
    result = runner.invoke(app, ["report", "--help"], terminal_width=400)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in stored_papers():
        assert name in text


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("against")
    build_vtab(root / "vtab-1k", tasks=TASKS)
    prepared = runner.invoke(app, ["prepare", "vtab", str(root / "vtab-1k"), "--shards", str(root / "shards"),
                                   "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    out = root / "suite"
    result = runner.invoke(app, ["suite", "vtab", "--method", "adaptformer", "--data", str(root / "shards"),
                                 "--out", str(out), "--model", "test_vit", "--recipe", "quick",
                                 "--set", "model.img_size=32", "--set", "data.workers=0", "--set", "train.epochs=1",
                                 "--sweep", "train.lr=1e-3", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def _files(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()}


def test_report_against_prints_ours_theirs_and_sources(suite, tmp_path):
    before = _files(suite)
    result = runner.invoke(app, ["report", str(suite), "--against", "V-PETL", "--tolerance", "0.5"],
                           terminal_width=400)
    assert result.exit_code == 0, result.output
    ours = {r["task"]: r["test"] for r in json.loads((suite / "results.json").read_text())["tasks"]}
    vpetl = {t.id: t for t in stored_papers()["vpetl"].tables}["vtab"]
    theirs = next(r for r in vpetl.rows if r.row == "AdaptFormer").tasks
    out = result.output
    assert "against vpetl: vtab/AdaptFormer" in out
    assert f"- source: {vpetl.source}" in out
    assert "- data: ours folder; theirs vpetl" in out
    for task in TASKS:
        diff = ours[task] - theirs[task]
        flag = "beyond ±0.5" if abs(diff) > 0.5 else ""
        assert f"| {task} | {BENCHMARKS.get('vtab').group_of(task)} | {ours[task]:.2f} | {theirs[task]:.2f} | " \
               f"{diff:+.2f} | {flag} | folder |" in out
    assert "| caltech101 | natural | - | 91.20 | - |  | - |" in out  # the paper's tasks the suite lacks
    mine, paper = mean(ours.values()), mean(theirs[t] for t in TASKS)
    assert f"| mean over tasks (3 of the paper's 19 tasks) | | {mine:.2f} | {paper:.2f} | {mine - paper:+.2f} |" in out
    assert "The paper averages as the mean over tasks; it prints 72.32 over its 19 tasks" in out

    data_file, plot_file = tmp_path / "report.json", tmp_path / "vs.png"
    result = runner.invoke(app, ["report", str(suite), "--against", "vpetl", "--format", "json",
                                 "--out", str(data_file), "--plot", str(plot_file)])
    assert result.exit_code == 0, result.output
    (comparison,) = json.loads(data_file.read_text())["against"]
    assert comparison["tolerance"] == 1.0 and comparison["paper"]["source"] == vpetl.source
    rows = {t["task"]: t for t in comparison["tasks"]}
    assert {t: rows[t]["ours"] for t in TASKS} == {t: ours[t] for t in TASKS}
    assert all(rows[t]["beyond_tolerance"] == (abs(ours[t] - theirs[t]) > 1.0) for t in TASKS)
    assert [g["group"] for g in comparison["groups"]] == ["natural", "specialized", "structured"]
    with Image.open(plot_file) as image:
        assert image.format == "PNG" and image.size[0] > 300
    csv = runner.invoke(app, ["report", str(suite), "--against", "vpetl", "--format", "csv"])
    assert csv.exit_code == 0 and "vpetl,vtab/AdaptFormer,dtd,natural," in csv.output
    assert _files(suite) == before  # the report reads the suite, never writes into it


@pytest.mark.parametrize("args, message", [
    (["--against", "nosuchpaper"], "--against nosuchpaper: unknown paper; known: adaptformer, arc, pace, vpetl"),
    (["--against", "ssf"], "--against ssf: this paper's table is not stored (SSF (Lian et al."),
    (["--against", "Adapter+"], "--against Adapter+: this paper's table is not stored (Adapter+ (Steitz and Roth"),
    (["--against", "pace"], "no row of pace is method adaptformer; pick one with --row (one of: table1/PACE)"),
    (["--against", "adaptformer"], "--against adaptformer: no row of the paper shares a task with vtab suite (ours: "
                                    "dtd, eurosat, kitti; the paper's tables: table1: cifar100, svhn, food101, ssv2, hmdb51;"),
    (["--against", "vpetl", "--row", "LoRA-XL"], "--row LoRA-XL names no row of vpetl for vtab suite; give one of: vtab/Full fine-tuning;"),
    (["--row", "vtab/SSF"], "--row goes with --against PAPER; add it or leave it out"),
    (["--against", "vpetl", "--tolerance", "-1"], "--tolerance -1.0: give a difference in points, 0 or more"),
])
def test_against_refusals(suite, tmp_path, args, message):
    out = tmp_path / "report.md"
    result = runner.invoke(app, ["report", str(suite), *args, "--out", str(out)], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not out.exists()


def test_report_against_group_means_only(suite):
    """ARC's stored row has its group means and average only: ours per group and averaged the paper's way."""
    result = runner.invoke(app, ["report", str(suite), "--against", "arc", "--row", "vtab/ARC", "--format", "json"])
    assert result.exit_code == 0, result.output
    (comparison,) = json.loads(result.output)["against"]
    ours = {r["task"]: r["test"] for r in json.loads((suite / "results.json").read_text())["tasks"]}
    assert [t["theirs"] for t in comparison["tasks"]] == [None] * 3
    groups = {g["group"]: g for g in comparison["groups"]}
    assert groups["natural"]["theirs"] == 81.6 and groups["natural"]["ours"] == ours["dtd"]
    assert groups["natural"]["theirs_over"] == "paper" and groups["structured"]["tasks"] == 1
    average = comparison["average"]
    assert average["rule"] == "mean_over_tasks" and average["theirs"] == 73.4 and average["theirs_over"] == "paper"
    assert average["ours"] == pytest.approx(mean(ours.values()))
    md = runner.invoke(app, ["report", str(suite), "--against", "arc", "--row", "vtab/ARC"], terminal_width=400)
    assert "| natural mean (ours 1 of 7 tasks; theirs: the paper's group mean) | |" in md.output
    assert "The paper averages as the mean over tasks and prints 73.40" in md.output


def test_rows_are_picked_by_method_or_named(tmp_path):
    from adaptcli.errors import AdaptError
    from adaptcli.protocols.against import Ours, pick_row

    vpetl, adaptformer = stored_papers()["vpetl"], stored_papers()["adaptformer"]
    arc = Ours(label="s", method="arc", backbone="vit", benchmark="vtab", scores={"dtd": 50.0})
    with pytest.raises(AdaptError, match=r"no row of vpetl is method arc; pick one with --row \(one of: vtab/Full"):
        pick_row(vpetl, arc, None)
    table, row = pick_row(vpetl, arc, "vtab/SSF")
    assert (table.id, row.row, row.tasks["dtd"]) == ("vtab", "SSF", 75.1)
    video = Ours(label="runs", method="adaptformer", backbone="vit", benchmark=None, scores={"ssv2": 50.0})
    with pytest.raises(AdaptError, match="several rows of adaptformer are method adaptformer; pick one with --row "
                                         r"\(one of: table1/AdaptFormer-1; table1/AdaptFormer-4; table1/AdaptFormer-64; "
                                         "table6/AdaptFormer-64; table7/AdaptFormer-Swin"):
        pick_row(adaptformer, video, None)
    with pytest.raises(AdaptError, match="names several rows"):
        pick_row(adaptformer, video, "AdaptFormer-64")
    table, row = pick_row(adaptformer, video, "table6/adaptformer-64")
    assert (table.table, row.tasks["ssv2"]) == ("Table 6", 60.18)
    table, row = pick_row(vpetl, video, "video/AdaptFormer (ViT-B, Kinetics 400)")
    assert row.tasks == {"ssv2": 59.02, "hmdb51": 55.69}


def test_runs_against_a_paper(suite):
    """Run folders (here the suite's final runs) compare by their dataset: a VTAB run's task folder."""
    runs = [str(suite / task / "final") for task in TASKS[:2]]
    result = runner.invoke(app, ["report", *runs, "--against", "vpetl", "--format", "json"])
    assert result.exit_code == 0, result.output
    (comparison,) = json.loads(result.output)["against"]
    ours = {r["task"]: r["test"] for r in json.loads((suite / "results.json").read_text())["tasks"]}
    assert comparison["suite"] == "runs" and comparison["paper"]["row_id"] == "vtab/AdaptFormer"
    assert {t["task"]: t["ours"] for t in comparison["tasks"] if t["ours"] is not None} == \
        {t: ours[t] for t in TASKS[:2]}
    assert comparison["average"]["tasks"] == 2
    twice = runner.invoke(app, ["report", runs[0], runs[0], "--against", "vpetl"])
    assert twice.exit_code == 2 and "two adaptformer runs on dtd" in twice.output


def test_runs_against_a_paper_of_group_means_only_say_what_it_holds(suite):
    """PACE's stored tables hold group means only: run folders are refused in one line that says so (no empty
    task list), and the note points at --row, which compares the suite."""
    runs = [str(suite / task / "final") for task in TASKS[:2]]
    refused = runner.invoke(app, ["report", *runs, "--against", "pace"], terminal_width=400)
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1, refused.output
    assert "table1: vtab suites only (no per-task scores); table3: fgvc suites only" in refused.output
    assert "--row table1/PACE" in stored_papers()["pace"].note
    named = runner.invoke(app, ["report", str(suite), "--against", "pace", "--row", "table1/PACE", "--format", "json"])
    assert named.exit_code == 0, named.output
    assert json.loads(named.output)["against"][0]["average"]["theirs"] == 79.0


def test_data_variant_is_what_the_manifest_records(tmp_path):
    shards = tmp_path / "shards"
    for task, dataset, settings in (("dtd", "vtab", {"variant": "tfds"}), ("kitti", "vtab", {}), ("svhn", "svhn", {})):
        (shards / task).mkdir(parents=True)
        write_manifest(shards / task, Manifest(dataset, "image", ["a", "b"], {}, settings=settings))
    (tmp_path / "suite.json").write_text(json.dumps({"data": str(shards)}))
    assert data_variant(tmp_path, "dtd") == "tfds"
    assert data_variant(tmp_path, "kitti") == "folder"  # VTAB prepared from the extracted folders records none
    assert data_variant(tmp_path, "svhn") == "unknown"
    assert data_variant(tmp_path, "eurosat") == "unknown"  # no dataset.json
