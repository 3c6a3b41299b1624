"""Bounded parsing (issue 32 item 8): a YAML alias bomb, a lock file adaptcli did not write, JSON nested
deeper than Python reads, a changed suite setting. Each: exit 2, one line naming the file or key and the
fix, and nothing the user owns changed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from tests.reliability.conftest import TINY, checksums, message_lines

runner = CliRunner()


def billion_laughs() -> str:
    """Nine aliases of nine, nine levels deep: 387 million strings once expanded (a few hundred bytes)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    lines.append("train: {epochs: 1, lr: *i}")
    return "\n".join(lines) + "\n"


def one_error(argv: list[str], pattern: str) -> str:
    result = runner.invoke(app, [str(a) for a in argv])
    assert result.exit_code == 2, result.output[-3000:]
    lines = [line for line in message_lines(result.stderr) if not line.startswith(("warning: ", "note: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def tiny_run(tiny_shards, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("bounded_run") / "run"
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(tiny_shards),
                                 "--out", str(run), *TINY, "--set", "train.epochs=1", "--no-progress"])
    assert result.exit_code == 0, result.output
    return run


def finetune(shards: Path, out: Path, *extra: str, recipe: str = "quick") -> list[str]:
    return ["finetune", "--method", "linear", "--recipe", recipe, "--data", str(shards), "--out", str(out),
            *TINY, "--set", "train.epochs=1", "--no-progress", *extra]


@pytest.mark.parametrize("content, pattern", [
    (billion_laughs(), r"r\.yaml is refused: its aliases expand to more than 100,000 values; write the values out"),
    ("train: &t {epochs: [*t]}\n", r"r\.yaml is refused: an alias refers to the value that holds it"),
    ("train: " + "[" * 20000 + "]" * 20000 + "\n", r"r\.yaml is refused: it is nested too deeply"),
])
def test_recipe_that_never_ends_is_refused(tiny_shards, tmp_path, content, pattern):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(content)
    before = checksums(tmp_path, tiny_shards)
    for argv in (finetune(tiny_shards, tmp_path / "out", recipe=str(recipe)),
                 finetune(tiny_shards, tmp_path / "out", "--dry-run", recipe=str(recipe)),
                 ["config", "--method", "lora", "--recipe", str(recipe)],
                 ["suite", "vtab", "--method", "lora", "--recipe", str(recipe), "--data", str(tiny_shards),
                  "--out", str(tmp_path / "suite"), "--dry-run"]):
        one_error(argv, pattern)
    assert checksums(tmp_path, tiny_shards) == before  # no run or suite folder either


def test_set_value_that_never_ends_is_refused(tiny_shards, tmp_path):
    bomb = "[" + ",".join(f"&{c} [" + ",".join([f"*{chr(ord(c) - 1)}" if c > "a" else "1"] * 10) + "]"
                          for c in "abcdefg") + "]"
    one_error(finetune(tiny_shards, tmp_path / "out", "--set", f"train.lr={bomb}"),
              r"--set train\.lr: the value is refused: its aliases expand to more than 100,000 values")
    assert not (tmp_path / "out").exists()


def test_run_config_that_never_ends_is_refused(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.yaml").write_text(billion_laughs())
    before = checksums(run)
    for argv in (["eval", "--run", run], ["export", "--run", run, "--merge", "--out", tmp_path / "m.safetensors"]):
        one_error(argv, rf"{re.escape(str(run / 'config.yaml'))} is not a configuration adaptcli reads "
                        r"\(its aliases expand .*\); restore the run's config\.yaml")
    assert checksums(run) == before and not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("lock", ["held by the nightly backup\n", '{"pid": "123", "host": "gpu1"}', "[]",
                                  json.dumps({"pid": 1, "host": "x", "started": 0}) + " " * 5000])
def test_lock_file_adaptcli_did_not_write(tiny_shards, tiny_run, tmp_path, lock):
    """Before: "in use by pid -1 on ? since 1970" (or a traceback for JSON of another shape)."""
    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    fresh.mkdir()
    shutil.copytree(tiny_run, resumed)
    for out, extra in ((fresh, ()), (resumed, ("--resume",))):
        (out / "run.lock").write_text(lock)
        before = checksums(out, tiny_shards)
        path = re.escape(str(out / "run.lock"))
        one_error(finetune(tiny_shards, out, *extra),
                  rf"{path} is not a run lock adaptcli wrote \(.*\); if no adaptcli process is training in "
                  rf"{re.escape(str(out))}, delete {path} and run the command again")
        assert checksums(out, tiny_shards) == before


def test_manifest_nested_too_deeply_is_bad_json(tiny_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(tiny_shards, shards)
    (shards / "dataset.json").write_text("[" * 100000 + "]" * 100000)
    before = checksums(shards)
    one_error(finetune(shards, tmp_path / "out"), r"dataset\.json is not a valid adaptcli manifest \(nested too deeply\)")
    assert checksums(shards) == before and not (tmp_path / "out").exists()


def test_suite_rerun_with_another_set_names_that_key(tmp_path):
    """Before: "a different 'overrides' (stored ['model.name=test_vit', 'model.img_size=32', ..." cut off."""
    from tests.data.standins import build_vtab

    build_vtab(tmp_path / "vtab-1k", tasks=("dtd",))
    prepared = runner.invoke(app, ["prepare", "vtab", str(tmp_path / "vtab-1k"), "--shards", str(tmp_path / "shards"),
                                   "--no-progress"])
    assert prepared.exit_code == 0, prepared.output
    common = ["suite", "vtab", "--method", "linear", "--model", "test_vit", "--recipe", "quick", "--data",
              str(tmp_path / "shards"), "--out", str(tmp_path / "suite"), *TINY, "--set", "train.batch_size=4",
              "--set", "train.epochs=1", "--sweep", "train.lr=0.01", "--no-progress"]
    first = runner.invoke(app, [*common, "--set", "data.augment=resize"])
    assert first.exit_code == 0, first.output
    before = checksums(tmp_path / "suite", tmp_path / "shards")
    line = one_error([*common, "--set", "data.augment=randaug"],
                     r"holds a suite with a different --set data\.augment \(stored resize, now randaug\) ")
    assert "--overwrite" in line and "train.batch_size" not in line
    one_error(common, r"different --set data\.augment \(stored resize, now not set\)")
    assert checksums(tmp_path / "suite", tmp_path / "shards") == before


def test_tar_name_record_and_member_are_bounded(tmp_path, monkeypatch):
    """A shard whose GNU long-name record (or a member) claims more than any adaptcli writes is damaged,
    not read into memory."""
    import tarfile

    from adaptcli.data.stream import tar_reader

    shard = tmp_path / "train-000000.tar"
    with tarfile.open(shard, "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("k/" + "x" * 200 + ".cls")  # a long name: a GNU 'L' record first
        info.size = 1
        tar.addfile(info, __import__("io").BytesIO(b"0"))
    assert [name for name, _ in tar_reader.iter_members(shard)][0].endswith(".cls")
    monkeypatch.setattr(tar_reader, "MAX_NAME_RECORD", 100)
    with pytest.raises(tar_reader.BadShard, match="a name record of 2.. bytes, not a shard adaptcli wrote"):
        list(tar_reader.iter_members(shard))
