"""The ownership rule for single-file outputs: ``report --out/--plot`` and ``eval --scores`` write a new
path or a file adaptcli wrote there itself, never a user's file or one a run, suite or dataset reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.ownership import LEDGER
from tests.reliability.conftest import TINY, checksums, message_lines

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tiny_shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("own") / "run"
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", *TINY, "--set",
                                 "train.epochs=1", "--data", str(tiny_shards), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _refused(args: list[str], *roots: Path) -> str:
    before = checksums(*roots)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = message_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, lines
    assert checksums(*roots) == before
    return lines[0]


@pytest.mark.parametrize("option,name", [("--out", "summary.json"), ("--plot", "best.safetensors"),
                                         ("--out", "run.json"), ("--plot", "config.yaml")])
def test_report_never_writes_over_a_runs_own_files(run, tiny_shards, option, name):
    line = _refused(["report", str(run), option, str(run / name)], run, tiny_shards)
    assert "adaptcli did not write it" in line and name in line
    assert runner.invoke(app, ["eval", "--run", str(run), "--split", "test"]).exit_code == 0  # the run still works


def test_report_never_writes_over_a_datasets_manifest(run, tiny_shards):
    _refused(["report", str(run), "--out", str(tiny_shards / "dataset.json")], run, tiny_shards)


def test_report_replaces_only_what_it_wrote_and_nobody_changed(run, tmp_path):
    user = tmp_path / "notes.md"
    user.write_text("my notes\n")
    _refused(["report", str(run), "--out", str(user)], tmp_path)

    table = tmp_path / "table.md"
    for _ in range(2):  # a new path, then the file adaptcli wrote there
        result = runner.invoke(app, ["report", str(run), "--out", str(table)])
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / LEDGER).read_text())["table.md"]
    table.write_text(table.read_text() + "a line the user added\n")
    _refused(["report", str(run), "--out", str(table)], tmp_path)
    assert table.read_text().endswith("a line the user added\n")


def test_report_refuses_its_ledger_and_one_file_for_both(run, tmp_path):
    _refused(["report", str(run), "--out", str(tmp_path / LEDGER)], tmp_path)
    _refused(["report", str(run), "--out", str(tmp_path / "x"), "--plot", str(tmp_path / "x")], tmp_path)


def test_eval_scores_never_replace_a_users_file(run, tmp_path):
    user = tmp_path / "scores.safetensors"
    user.write_bytes(b"not adaptcli's")
    _refused(["eval", "--run", str(run), "--split", "test", "--scores", str(user)], tmp_path, run)
    fresh = tmp_path / "fresh.safetensors"
    for _ in range(2):
        result = runner.invoke(app, ["eval", "--run", str(run), "--split", "test", "--scores", str(fresh)])
        assert result.exit_code == 0, result.output


def _finetune(shards: Path, out: Path, *extra: str):
    return runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", *TINY, "--set", "train.epochs=1",
                               "--data", str(shards), "--out", str(out), *extra])


def test_resume_of_a_finished_run_changes_nothing(run, tiny_shards):
    before = checksums(run)
    result = _finetune(tiny_shards, run, "--resume")
    assert result.exit_code == 0, result.output
    assert "is finished" in result.output and "nothing to resume" in result.output
    assert checksums(run) == before
    assert json.loads((run / "summary.json").read_text())["samples_per_second"] > 0


def test_overwrite_removes_only_what_adaptcli_wrote_and_says_what_it_left(tiny_shards, tmp_path):
    out = tmp_path / "run"
    assert _finetune(tiny_shards, out).exit_code == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "plots").mkdir()
    (out / "plots" / "a.png").write_bytes(b"png")
    mine = checksums(out / "notes.txt", out / "plots")
    result = _finetune(tiny_shards, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert checksums(out / "notes.txt", out / "plots") == mine
    warning = [line for line in message_lines(result.stderr) if "--overwrite" in line]
    assert len(warning) == 1 and "left 2 entries adaptcli did not write: notes.txt, plots" in warning[0]
    assert json.loads((out / "run.json").read_text())["state"] == "finished"


def test_a_suites_final_copy_never_deletes_a_users_file(tmp_path):
    from adaptcli.errors import AdaptError
    from adaptcli.protocols.suite import copy_run

    source, target = tmp_path / "sweep", tmp_path / "final"
    source.mkdir()
    (source / "config.yaml").write_text("method: arc\n")
    (source / "run.json").write_text("{}")
    target.mkdir()
    (target / "run.json").write_text("{\"old\": true}")
    (target / "notes.txt").write_text("mine")
    before = checksums(target)
    with pytest.raises(AdaptError, match=r"final holds entries adaptcli did not write \(notes.txt\)"):
        copy_run(source, target)
    assert checksums(target) == before
    (target / "notes.txt").unlink()
    copy_run(source, target)
    assert sorted(p.name for p in target.iterdir()) == ["config.yaml", "run.json"]
    assert (target / "run.json").read_text() == "{}"


# ---------------------------------------------------------------------------- the folder rule itself

KIND = dict(marker="made.json", entries=("made.json", "weights", "*.tar"), what="an adaptcli thing")


def test_claim_folder_refuses_a_file_and_a_folder_without_its_marker_in_one_wording(tmp_path):
    from adaptcli.errors import AdaptError
    from adaptcli.ownership import claim_folder

    (tmp_path / "f").write_text("x")
    with pytest.raises(AdaptError, match=r"^--out .*/f is a file, not a folder"):
        claim_folder(tmp_path / "f", overwrite=True, **KIND)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.tar").write_text("a user's archive")  # named like an entry, but no marker: not ours
    for overwrite in (None, False, True):
        with pytest.raises(AdaptError) as refused:
            claim_folder(mine, overwrite=overwrite, **KIND)
        assert str(refused.value) == (f"--out {mine} holds files that are not an adaptcli thing (found: a.tar; "
                                      "no made.json); choose a new or empty folder")
    assert (mine / "a.tar").read_text() == "a user's archive"
    assert not claim_folder(tmp_path / "new", overwrite=False, **KIND).found
    (tmp_path / "empty").mkdir()
    assert not claim_folder(tmp_path / "empty", overwrite=False, **KIND).found


def test_claim_folder_clears_only_its_entries_and_their_leftovers(tmp_path):
    from adaptcli.errors import AdaptError
    from adaptcli.ownership import claim_folder

    folder = tmp_path / "ours"
    (folder / "weights").mkdir(parents=True)
    for name in ("made.json", "0.tar", ".tmp-123-made.json", "notes.txt", ".tmp-notes.txt", "lock"):
        (folder / name).write_text("x")
    (folder / "old.tar").mkdir()  # a folder named like a file entry: the pattern matches files only
    with pytest.raises(AdaptError, match=r"already holds an adaptcli thing; pass --overwrite to replace it"):
        claim_folder(folder, overwrite=False, **KIND)
    claim = claim_folder(folder, overwrite=True, ignore=("lock",), **KIND)
    assert claim.found and claim.foreign() == [".tmp-notes.txt", "notes.txt", "old.tar"]
    assert claim.clear() == [".tmp-notes.txt", "notes.txt", "old.tar"]
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-notes.txt", "lock", "notes.txt", "old.tar"]


def test_a_folder_replaced_whole_must_hold_nothing_else(tmp_path):
    from adaptcli.errors import AdaptError
    from adaptcli.ownership import Marker, claim_folder, wrote_folder

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architecture": "vit"}))  # timm's own, not adaptcli's
    kind = dict(marker=Marker("config.json", key="adaptcli"), entries=("config.json",), what="an adaptcli export")
    assert not wrote_folder(folder, kind["marker"], kind["entries"])
    with pytest.raises(AdaptError, match=r"no config.json with an 'adaptcli' section"):
        claim_folder(folder, overwrite=True, whole=True, **kind)
    (folder / "config.json").write_text(json.dumps({"adaptcli": {}}))
    assert wrote_folder(folder, kind["marker"], kind["entries"])
    assert claim_folder(folder, overwrite=True, whole=True, **kind).found
    (folder / "notes.txt").write_text("mine")
    assert not wrote_folder(folder, kind["marker"], kind["entries"])
    with pytest.raises(AdaptError, match=r"holds entries adaptcli did not write \(notes.txt\); move them out"):
        claim_folder(folder, overwrite=True, whole=True, **kind)
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(AdaptError, match=r"is a symbolic link"):
        claim_folder(link, overwrite=True, whole=True, **kind)
