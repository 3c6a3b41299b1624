"""A suite on data that names a split by an alias of the benchmark's name (shards written before the split-name
table kept a dataset's own ``training``/``testing``): the runs record the data's names, and a re-run of the
unchanged suite recognises them as its own instead of refusing them as changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.data.standins import build_fgvc

runner = CliRunner()
TASK = "CUB_200_2011"


def suite(shards: Path, out: Path, *extra: str):
    return runner.invoke(app, ["suite", "fgvc", "--data", str(shards), "--out", str(out), "--method", "linear",
                               "--model", "test_vit", "--recipe", "quick", "--set", "model.img_size=32",
                               "--set", "data.workers=0", "--set", "train.epochs=1", "--no-progress", *extra])


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_rerun_on_data_naming_its_splits_by_aliases_is_unchanged_and_a_change_still_refused(tmp_path):
    build_fgvc(tmp_path / "raw")
    shards = tmp_path / "shards"
    prepared = runner.invoke(app, ["prepare", "fgvc", str(tmp_path / "raw"), "--dataset", TASK,
                                   "--shards", str(shards / TASK), "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    manifest = shards / TASK / "dataset.json"
    tree = json.loads(manifest.read_text())
    tree["splits"] = {{"train": "training", "test": "testing"}.get(name, name): split
                      for name, split in tree["splits"].items()}
    manifest.write_text(json.dumps(tree))
    data_before = fingerprint(shards)

    out = tmp_path / "suite"
    first = suite(shards, out)
    assert first.exit_code == 0, first.output
    final = out / TASK / "final"
    data = yaml.safe_load((final / "config.yaml").read_text())["data"]
    assert (data["train_split"], data["test_split"]) == ("training", "testing")  # the data's own names
    before = fingerprint(out)

    again = suite(shards, out)
    assert again.exit_code == 0, again.output
    assert "(done before, skipped)" in again.output, again.output
    assert fingerprint(out) == before

    changed = suite(shards, out, "--set", "train.lr=0.5")
    assert changed.exit_code == 2 and "--overwrite" in changed.stderr, changed.output
    assert len(changed.stderr.strip().splitlines()) == 1 and "Traceback" not in changed.output
    assert fingerprint(out) == before and fingerprint(shards) == data_before


def test_a_split_option_given_to_a_suite_is_refused_not_ignored(tmp_path):
    """The benchmark names each step's splits; a --set or --sweep of one would be silently replaced."""
    for extra in (["--set", "data.train_split=train"], ["--set", "data.val_split=null"],
                  ["--sweep", "data.test_split=test,val"]):
        result = suite(tmp_path / "shards", tmp_path / "suite", *extra)
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert extra[1].split("=")[0] in result.stderr and "adaptcli finetune" in result.stderr
        assert not (tmp_path / "suite").exists()
