"""The typed records between commands read the files today's adaptcli writes (written here by hand, keys and
layout verbatim), and no module outside the record types reads run.json, summary.json, eval.json or
suite.json by key."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from adaptcli.data.manifest import Manifest, SplitInfo, write_manifest
from adaptcli.deploy.header import ExportHeader
from adaptcli.protocols.benchmarks import averages, benchmark
from adaptcli.protocols.results import SuiteResults, read_settings, to_csv, to_markdown
from adaptcli.runs.folder import RunDir
from adaptcli.runs.info import RunInfo

PACKAGE = Path(__file__).resolve().parents[2] / "adaptcli"

#: run.json as runs/record.py's start_run and set_state wrote it before RunInfo (keys and order verbatim).
OLD_RUN_JSON = {"data": "/data/shards/dtd", "dataset": "dtd", "modality": "image", "classes": ["banded", "woven"],
                "num_classes": 2, "state": "finished", "epoch": 3, "step": 12, "checkpoint": "epoch-0003"}


def _old_run(folder: Path, run_json: dict, shards: Path | None = None) -> RunDir:
    folder.mkdir()
    (folder / "config.yaml").write_text("method: linear\n")
    info = {**run_json, "data": str(shards)} if shards else run_json
    (folder / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    return RunDir(folder)


def test_an_old_run_json_reads_and_writes_back_unchanged(tmp_path):
    run = _old_run(tmp_path / "run", OLD_RUN_JSON)
    before = run.info_file.read_bytes()
    info = run.info()
    assert (info.data, info.dataset, info.modality, info.classes, info.num_classes) == (
        "/data/shards/dtd", "dtd", "image", ["banded", "woven"], 2)
    assert (info.state, info.epoch, info.step, info.checkpoint, info.progress) == ("finished", 3, 12, "epoch-0003",
                                                                                   "finished")
    assert info.method is None and info.backbone_sha256 is None  # not recorded then
    assert info.task == "single-label" and not info.multi_label  # no summary, no manifest to say otherwise
    assert RunInfo.from_dict(OLD_RUN_JSON).to_dict() == OLD_RUN_JSON
    assert list(RunInfo.from_dict(OLD_RUN_JSON).to_dict()) == list(OLD_RUN_JSON)
    run.set_state("finished", epoch=3, step=12)
    assert run.info_file.read_bytes() == before


def test_a_run_json_without_states_is_finished():
    older = {k: OLD_RUN_JSON[k] for k in ("data", "dataset", "modality", "classes", "num_classes")}
    info = RunInfo.from_dict(older)
    assert info.state is None and info.progress == "finished" and info.to_dict() == older


@pytest.mark.parametrize("told_by", ["summary", "manifest"])
def test_an_old_multi_label_run_takes_its_task_from_its_summary_or_its_data(tmp_path, told_by):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_manifest(shards, Manifest("nuswide", "image", ["sky", "water"], {"test": SplitInfo([], 0)},
                                    task="multi-label" if told_by == "manifest" else "single-label"))
    run = _old_run(tmp_path / "run", OLD_RUN_JSON, shards)
    if told_by == "summary":  # a finished run: its summary says it (the manifest may have been replaced)
        run.summary_file.write_text(json.dumps({"method": "linear", "task": "multi-label", "metric": "mAP"}))
    assert run.info().task == "multi-label" and run.info().multi_label
    assert "task" not in json.loads(run.info_file.read_text())  # reading writes nothing


def test_a_damaged_run_json_is_named():
    with pytest.raises(ValueError, match="run.json is not a JSON object"):
        RunInfo.from_dict([1, 2])
    with pytest.raises(KeyError, match="data"):
        _ = RunInfo.from_dict({"classes": []}).data_dir


#: results.json as protocols/suite.py's collect wrote it before SuiteResults (``test_top1`` even for mAP).
OLD_RESULTS = {
    "format": "adaptcli.suite-results/1", "benchmark": "vtab", "method": "arc", "backbone": "test_vit",
    "protocol": "tune on train800/val200", "grid": {"train.lr": [0.001, 0.01]},
    "tasks": [{"task": "dtd", "group": "natural", "test_top1": 61.5, "chosen": {"train.lr": 0.01},
               "point": "lr-0.01", "selection_split": "val200", "selection_top1": 58.0,
               "sweep": {"lr-0.001": 50.0, "lr-0.01": 58.0}, "trainable_params": 1200, "trainable_percent": 0.5,
               "run": "dtd/final"}],
    "averages": averages(benchmark("vtab"), {"dtd": 61.5}),  # the benchmark's own averages, not under test here
}


def test_an_old_suite_results_json_reads_with_its_scores_named_test_and_selection(tmp_path):
    results = SuiteResults.from_dict(json.loads(json.dumps(OLD_RESULTS)))
    row = results.tasks[0]
    assert (row.task, row.metric, row.test, row.selection, row.point) == ("dtd", "top1", 61.5, 58.0, "lr-0.01")
    assert row.sweep == {"lr-0.001": 50.0, "lr-0.01": 58.0} and row.trainable_params == 1200
    written = results.to_dict()
    assert written["format"] == "adaptcli.suite-results/1" and "test_top1" not in written["tasks"][0]
    assert written["tasks"][0]["test"] == 61.5 and written["tasks"][0]["selection"] == 58.0
    assert SuiteResults.from_dict(written) == results
    assert "| test top-1 |" in to_markdown(results) and to_csv(results).splitlines()[1].startswith("dtd,natural,61.5000,top1")


def test_a_multi_label_suite_row_says_map():
    data = {**OLD_RESULTS, "tasks": [{**OLD_RESULTS["tasks"][0], "metric": "mAP", "test": 41.0, "selection": 39.0}]}
    for key in ("test_top1", "selection_top1"):
        del data["tasks"][0][key]
    results = SuiteResults.from_dict(data)
    assert results.tasks[0].metric == "mAP" and results.metric_label == "mAP"
    assert "| test mAP |" in to_markdown(results) and "top-1" not in to_markdown(results).split("\n")[4]


def test_an_old_suite_json_reads_without_its_protocol(tmp_path):
    settings = {"benchmark": "vtab", "method": "arc", "recipe": "vtab", "overrides": [], "grid": {},
                "data": "/data/vtab"}
    (tmp_path / "suite.json").write_text(json.dumps({**settings, "protocol": "tune on train800/val200"}, indent=2))
    assert read_settings(tmp_path) == settings


#: An export header as deploy/header.py's export_metadata wrote it before ExportHeader (decoded values).
OLD_HEADER = {"format": "adaptcli.merged/1", "backbone": "test_vit", "method": "arc", "modality": "image",
              "classes": ["a", "b"], "num_classes": 2, "input_size": [3, 32, 32], "mean": [0.5, 0.5, 0.5],
              "std": [0.5, 0.5, 0.5], "create_kwargs": {"num_classes": 2}, "config": {"method": "arc"},
              "adaptcli_version": "0.1.0"}


def test_an_old_export_header_reads_as_single_label_and_writes_back_unchanged():
    header = ExportHeader.from_dict(dict(OLD_HEADER))
    assert header.task is None and not header.multi_label and header.num_frames is None
    assert header.to_dict() == OLD_HEADER and list(header.to_dict()) == list(OLD_HEADER)
    assert ExportHeader.from_dict({**OLD_HEADER, "task": "multi-label", "opset": 17}).to_dict()["opset"] == 17


# ---------------------------------------------------------------------------- one reader per record

#: The modules that read these files: each record's own.
RECORD_MODULES = {"runs/info.py", "runs/results.py", "protocols/results.py"}
RECORD_FILES = ("run.json", "summary.json", "eval.json", "suite.json")
#: RunDir's paths of those files.
RECORD_PATHS = {"info_file", "summary_file", "eval_file"}
READERS = {"read_json", "load", "loads", "read_text", "read_bytes", "read_text_bounded", "open"}


def _names_a_record(node: ast.AST, bound: frozenset[str] = frozenset()) -> bool:
    """``node`` spells a record file's name, RunDir's attribute for it, or a variable ``bound`` to one."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and any(f in sub.value for f in RECORD_FILES):
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in RECORD_PATHS:
            return True
        if isinstance(sub, ast.Name) and sub.id in bound:
            return True
    return False


def record_reads(path: Path) -> list[int]:
    """Lines of ``path`` that read one of the record files: a JSON or text read whose call names the file
    (its name, or RunDir's attribute for it), or a loop over the file names around such a read."""
    tree = ast.parse(path.read_text())

    def reads(node: ast.AST) -> bool:
        func = node.func if isinstance(node, ast.Call) else None
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in READERS

    bound = frozenset(target.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and _names_a_record(node.value)
                      for target in node.targets if isinstance(target, ast.Name))
    found = [node.lineno for node in ast.walk(tree) if reads(node) and _names_a_record(node, bound)]
    found += [node.lineno for node in ast.walk(tree) if isinstance(node, ast.For) and _names_a_record(node.iter)
              and any(reads(n) for n in ast.walk(node))]
    return sorted(found)


def test_the_check_finds_each_way_of_reading_a_record_by_key(tmp_path):
    sample = tmp_path / "reader.py"
    sample.write_text("import json\nfrom adaptcli.files import read_json\n"
                      "def a(run):\n    return read_json(run / 'run.json')['data']\n"
                      "def b(run):\n    return json.loads(run.summary_file.read_text())\n"
                      "def c(run):\n    for name in ('eval.json', 'suite.json'):\n        read_json(run / name)\n"
                      "def d(run):\n    return RunInfo.read(run.info_file).data\n"
                      "def e(out):\n    file = out / 'suite.json'\n    return read_json(file)\n")
    assert record_reads(sample) == [4, 6, 6, 8, 14]


def test_no_module_outside_the_record_types_reads_the_record_files():
    offenders = [f"{path.relative_to(PACKAGE)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
                 if str(path.relative_to(PACKAGE)) not in RECORD_MODULES for line in record_reads(path)]
    assert not offenders, f"read run.json/summary.json/eval.json/suite.json through their record types: {offenders}"


def test_state_for_reads_what_a_run_folder_holds(tmp_path):
    from adaptcli.config import resolve

    config = resolve("quick", method="linear")
    run = RunDir(tmp_path / "run")
    data = tmp_path / "shards"
    assert run.state_for(config, data) == ("new", "")
    run.path.mkdir()
    (run.path / "notes.txt").write_text("a user's")
    assert run.state_for(config, data) == ("restart", "")  # not a run yet
    run.write_config(config, RunInfo(data=str(data.resolve()), classes=["a", "b"], num_classes=2, state="running"))
    assert run.state_for(config, data) == ("restart", "")  # no checkpoint to resume from
    run.checkpoint_dir(1).mkdir(parents=True)
    assert run.state_for(config, data) == ("resume", "")
    run.summary_file.write_text("{}")
    assert run.state_for(config, data) == ("finished", "")
    state, detail = run.state_for(config, tmp_path / "other")
    assert state == "differs" and detail.startswith("'data' (stored") and str(tmp_path / "other") in detail
    changed = resolve("quick", method="linear", overrides=["train.lr=0.5"])
    state, detail = run.state_for(changed, data)
    assert state == "differs" and detail.startswith("'train.lr'") and "now 0.5" in detail
