"""Special files never hang a command and damaged names or sizes never reach a path or an allocation:
FIFOs and device links among the sources and shards, a tar member with a huge size field, split and shard
names that would leave their folder. Each case: exit code, one stderr line (or a listed skip), and the
checksums of every user file before and after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptcli.data.synthetic import write_image_folder
from tests.engine.conftest import colour_images
from tests.reliability.conftest import TINY, checksums, copy_tree, message_lines, train_shards

TIMEOUT = 120  # a hang fails the case instead of the suite


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adaptcli", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _one_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in message_lines(result.stderr) if not line.startswith(("warning:", "skipping"))]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.stderr, lines
    return lines[0]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_prepare_skips_and_lists_a_special_file_among_images(tmp_path, kind):
    src = tmp_path / "src"
    write_image_folder(src, {"train": {"a": colour_images(3, (200, 0, 0), 1), "b": colour_images(3, (0, 0, 200), 2)}})
    special = src / "train" / "a" / "special.jpg"
    os.mkfifo(special) if kind == "fifo" else special.symlink_to("/dev/zero")
    before = checksums(src)
    result = _cli("prepare", "imagefolder", str(src), "--shards", str(tmp_path / "shards"), "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert manifest["splits"]["train"]["samples"] == 6
    assert any("special" in json.dumps(s) for s in manifest["skipped"])
    assert checksums(src) == before


def test_a_fifo_video_is_skipped_not_waited_for(tmp_path):
    from adaptcli.data.synthetic import moving_square, write_video

    src = tmp_path / "src"
    for cls in ("left", "right"):
        for i in range(2):
            write_video(src / "train" / cls / f"c{i}.webm", moving_square(cls, 8, 32, 32, seed=i))
    os.mkfifo(src / "train" / "left" / "fifo.webm")
    result = _cli("prepare", "videofolder", str(src), "--shards", str(tmp_path / "shards"), "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert manifest["splits"]["train"]["samples"] == 4 and "fifo" in json.dumps(manifest["skipped"])


def _fifo_shards(tiny_shards: Path, tmp_path: Path) -> Path:
    data = copy_tree(tiny_shards, tmp_path / "data")
    for shard in train_shards(data):
        shard.unlink()
        os.mkfifo(shard)
    return data


def test_finetune_on_fifo_shards_stops_with_one_line(tiny_shards, tmp_path):
    data = _fifo_shards(tiny_shards, tmp_path)
    line = _one_error(_cli("finetune", "--method", "linear", "--recipe", "quick", *TINY, "--data", str(data),
                           "--out", str(tmp_path / "run")))
    assert "missing" in line or "regular file" in line


def test_eval_on_a_fifo_shard_stops_with_one_line(tiny_shards, tmp_path):
    data = copy_tree(tiny_shards, tmp_path / "data")
    result = _cli("finetune", "--method", "linear", "--recipe", "quick", *TINY, "--set", "train.epochs=1",
                  "--data", str(data), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    test = sorted(data.glob("test-*.tar"))[0]
    test.unlink()
    os.mkfifo(test)
    line = _one_error(_cli("eval", "--run", str(tmp_path / "run"), "--split", "test"))
    assert test.name in line and "regular file" in line


def test_a_tar_member_claiming_a_huge_size_is_a_damaged_shard(tiny_shards, tmp_path):
    data = copy_tree(tiny_shards, tmp_path / "data")
    shard = sorted(data.glob("test-*.tar"))[0]
    raw = bytearray(shard.read_bytes())
    raw[124:136] = b"77777777777\x00"  # 8 GiB in the first member's size field
    raw[148:156] = b"        "
    raw[148:155] = f"{sum(raw[:512]):06o}\x00".encode()
    shard.write_bytes(bytes(raw))
    from adaptcli.data.stream.tar_reader import BadShard, iter_members

    with pytest.raises(BadShard, match="truncated member"):
        list(iter_members(shard))


def test_manifest_shard_names_stay_inside_the_data_folder(tiny_shards, tmp_path):
    data = copy_tree(tiny_shards, tmp_path / "data")
    victim = tmp_path / "victim.tar"
    victim.write_bytes(b"theirs")
    manifest = json.loads((data / "dataset.json").read_text())
    manifest["splits"]["train"]["shards"] = ["../victim.tar"]
    (data / "dataset.json").write_text(json.dumps(manifest))
    before = checksums(tmp_path)
    line = _one_error(_cli("finetune", "--method", "linear", "--recipe", "quick", *TINY, "--data", str(data),
                           "--out", str(tmp_path / "run")))
    assert "../victim.tar" in line and "data folder" in line
    assert checksums(victim) == {k: v for k, v in before.items() if k == str(victim)}


@pytest.mark.parametrize("split", ["../x", "/abs/train", "../victim/train"])
def test_imagelist_split_names_never_become_paths_outside_shards(tmp_path, split):
    images = tmp_path / "images"
    write_image_folder(images, {"train": {"a": colour_images(2, (200, 0, 0), 1), "b": colour_images(2, (0, 0, 200), 2)}})
    rows = ["path,labels,split"] + [f"{p.relative_to(tmp_path)},{p.parent.name},{split}"
                                    for p in sorted(images.rglob("*.*")) if p.is_file()]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "train-000000.tar").write_bytes(b"another dataset")
    before = checksums(tmp_path)
    line = _one_error(_cli("prepare", "imagelist", str(tmp_path / "list.csv"), "--shards", str(tmp_path / "out"),
                           "--no-progress"))
    assert "split name" in line
    assert {k: v for k, v in checksums(tmp_path).items() if "/out" not in k} == before


@pytest.mark.parametrize("option", ["recipe", "checkpoint"])
def test_a_special_file_given_as_an_option_is_one_line(tiny_shards, tmp_path, option):
    special = tmp_path / f"special.{'yaml' if option == 'recipe' else 'safetensors'}"
    os.mkfifo(special)
    args = ["finetune", "--method", "linear", "--recipe", "quick", *TINY, "--data", str(tiny_shards),
            "--out", str(tmp_path / "run")]
    if option == "recipe":
        args[args.index("quick")] = str(special)
    else:
        args += ["--set", f"model.checkpoint={special}"]
    line = _one_error(_cli(*args))
    assert str(special) in line and "named pipe" in line, line
