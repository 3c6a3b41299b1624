"""``prepare`` on the layouts and list formats users have (issue 32, items 4 and 5): Kinetics as CVDF
distributes it and as mmaction2's tools leave it, the ``path label`` lists mmaction2 and VideoMAE read,
split folders named ``val``; one split-name table, the line saying which file became which split, and
``data.val_split`` checked against the data. Tiny real files (H.264 mp4, VP9 webm, JPEG) in the exact
layouts; every test also checks that nothing under the user's folder changed."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.prepare.sources.base import sanitise_key
from adaptcli.data.synthetic import moving_square, write_image, write_video

runner = CliRunner()
FOOTBALL, KNOT = "passing American football (in game)", "tying knot (not on a tie)"


def _clip(path: Path, seed: int, frames: int = 8) -> Path:
    """A tiny real clip: H.264 in mp4 (Kinetics downloads), VP9 in webm."""
    codec = "libx264" if path.suffix == ".mp4" else "libvpx-vp9"
    return write_video(path, moving_square("left" if seed % 2 else "right", frames, 32, 32, seed=seed), codec=codec)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _prepare(*args: object):
    return runner.invoke(app, ["prepare", *map(str, args), "--no-progress", "--workers", "0"])


def _manifest(shards: Path) -> dict:
    return json.loads((shards / "dataset.json").read_text())


def _labels(shards: Path, split: str) -> dict[str, int | None]:
    """key -> the ``cls`` stored in the shards (None for an unlabelled sample)."""
    found: dict[str, int | None] = {}
    for name in _manifest(shards)["splits"][split]["shards"]:
        with tarfile.open(shards / name) as tar:
            for member in tar.getmembers():
                key, field = member.name.split(".", 1)
                found.setdefault(key, None)
                if field == "cls":
                    found[key] = int(tar.extractfile(member).read())  # type: ignore[union-attr]
    return found


def _kinetics_rows(split: str, count: int, first: int) -> list[tuple[str, str, int, int]]:
    return [(FOOTBALL if i % 2 else KNOT, f"{split[:2]}{i:02d}-x_Y", 10 * i, 10 * i + 10)
            for i in range(first, first + count)]


def _clip_name(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}"


def test_kinetics_as_cvdf_distributes_it_keeps_its_validation_split(tmp_path):
    """CVDF's kinetics-dataset: annotations/{train,val,test}.csv, flat train/, val/, test/ folders of mp4."""
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    header = "label,youtube_id,time_start,time_end,split\n"
    for split, folder, count, first in (("train", "train", 4, 0), ("val", "val", 2, 10)):
        rows = _kinetics_rows(split, count, first)
        text = "".join(f'"{label}",{yid},{start},{end},{split}\n' if "(" in label else f"{label},{yid},{start},{end},{split}\n"
                       for label, yid, start, end in rows)
        (root / "annotations" / f"{split}.csv").write_text(header + text)
        for n, (_, yid, start, end) in enumerate(rows):
            _clip(root / folder / f"{_clip_name(yid, start, end)}.mp4", seed=first + n)
    test_rows = [(f"te{i:02d}", 10 * i, 10 * i + 10) for i in range(2)]  # Kinetics-700-2020's test.csv: no label
    (root / "annotations" / "test.csv").write_text("youtube_id,time_start,time_end,split\n" + "".join(
        f"{yid},{start},{end},test\n" for yid, start, end in test_rows))
    for n, (yid, start, end) in enumerate(test_rows):
        _clip(root / "test" / f"{_clip_name(yid, start, end)}.mp4", seed=n)
    before = _snapshot(root)

    result = _prepare("kinetics", root, "--shards", tmp_path / "shards")
    assert result.exit_code == 0, result.output
    assert ("kinetics splits: annotations/train.csv -> train (4), annotations/val.csv -> validation (2), "
            "annotations/test.csv -> test (2)") in result.stdout
    manifest = _manifest(tmp_path / "shards")
    assert {s: i["samples"] for s, i in manifest["splits"].items()} == {"train": 4, "validation": 2, "test": 2}
    assert list(manifest["classes"].values()) == [FOOTBALL, KNOT]
    assert set(_labels(tmp_path / "shards", "validation").values()) == {0, 1}
    assert set(_labels(tmp_path / "shards", "test").values()) == {None}

    chosen = _prepare("kinetics", root, "--shards", tmp_path / "two", "--splits", "train,validation")
    assert chosen.exit_code == 0, chosen.output
    assert list(_manifest(tmp_path / "two")["splits"]) == ["train", "validation"]
    wrong = _prepare("kinetics", root, "--shards", tmp_path / "none", "--splits", "train,holdout")
    assert wrong.exit_code == 2
    assert wrong.stderr.strip() == "error: kinetics has no split 'holdout' (choose from train, validation, test)"
    assert _snapshot(root) == before

    plan = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(tmp_path / "shards"),
                               "--out", str(tmp_path / "run"), "--model", "video_vit_test", "--dry-run"])
    assert plan.exit_code == 0, plan.output
    assert "train on 'train' (4 samples), validate on 'validation' (2)" in plan.stdout


def test_kinetics_from_the_activitynet_crawler(tmp_path):
    """ActivityNet/Crawler/Kinetics: data/kinetics-400_{train,val}.csv, download.py puts each clip in a folder
    named by its label as written (spaces and parentheses)."""
    root = tmp_path / "kinetics"
    root.mkdir()
    for split, count, first in (("train", 4, 0), ("val", 2, 10)):
        rows = _kinetics_rows(split, count, first)
        (root / f"kinetics-400_{split}.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "".join(
            f"{label},{yid},{start},{end},{split}\n" for label, yid, start, end in rows))
        for n, (label, yid, start, end) in enumerate(rows):
            _clip(root / split / label / f"{_clip_name(yid, start, end)}.mp4", seed=first + n)
    before = _snapshot(root)
    result = _prepare("kinetics", root, "--shards", tmp_path / "shards", "--splits", "val")
    assert result.exit_code == 0, result.output
    assert "kinetics splits: kinetics-400_val.csv -> validation (2)" in result.stdout
    manifest = _manifest(tmp_path / "shards")
    assert list(manifest["classes"].values()) == [FOOTBALL, KNOT] and manifest["skipped"] == []
    assert _snapshot(root) == before


def _mmaction2_kinetics(data: Path) -> dict[str, list[tuple[str, int]]]:
    """mmaction2's tools/data/kinetics: annotations/kinetics_{train,val}.csv (download_annotations.sh),
    videos_{train,val}/<class_with_underscores>/<clip>.mp4 (rename_classnames.sh) and the video lists
    kinetics400_{train,val}_list_videos.txt ('<class>/<clip>.mp4 <label>', build_file_list.py --level 2)."""
    (data / "annotations").mkdir(parents=True)
    classes = sorted(c.replace(" ", "_") for c in (FOOTBALL, KNOT))
    lists: dict[str, list[tuple[str, int]]] = {}
    for split, count, first in (("train", 4, 0), ("val", 2, 10)):
        rows = _kinetics_rows(split, count, first)
        (data / "annotations" / f"kinetics_{split}.csv").write_text(
            "label,youtube_id,time_start,time_end,split\n"
            + "".join(f'"{label}",{yid},{start},{end},{split}\n' for label, yid, start, end in rows))
        lists[split] = []
        for n, (label, yid, start, end) in enumerate(rows):
            rel = f"{label.replace(' ', '_')}/{_clip_name(yid, start, end)}.mp4"
            _clip(data / f"videos_{split}" / rel, seed=first + n)
            lists[split].append((rel, classes.index(label.replace(" ", "_"))))
        (data / f"kinetics400_{split}_list_videos.txt").write_text("".join(f"{rel} {label}\n" for rel, label in lists[split]))
        # rawframe lists sit beside the video lists once frames are extracted: 'path frames label'
        (data / f"kinetics400_{split}_list_rawframes.txt").write_text("".join(
            f"{rel[:-4]} 8 {label}\n" for rel, label in lists[split]))
    return lists


def test_kinetics_from_mmaction2s_tools_and_its_video_lists(tmp_path):
    data = tmp_path / "kinetics400"
    lists = _mmaction2_kinetics(data)
    (tmp_path / "label_map_k400.txt").write_text(f"{FOOTBALL}\n{KNOT}\n")  # tools/data/kinetics/label_map_k400.txt
    before = _snapshot(data)

    result = _prepare("kinetics", data, "--shards", tmp_path / "from-csv")
    assert result.exit_code == 0, result.output
    assert ("kinetics splits: annotations/kinetics_train.csv -> train (4), "
            "annotations/kinetics_val.csv -> validation (2)") in result.stdout
    manifest = _manifest(tmp_path / "from-csv")
    assert list(manifest["classes"].values()) == [FOOTBALL, KNOT]
    assert {s: i["samples"] for s, i in manifest["splits"].items()} == {"train": 4, "validation": 2}

    listed = _prepare("videolist", data, "--labels", tmp_path / "label_map_k400.txt", "--shards", tmp_path / "from-lists")
    assert listed.exit_code == 0, listed.output
    assert ("videolist splits: kinetics400_train_list_videos.txt -> train (4), "
            "kinetics400_val_list_videos.txt -> validation (2)") in listed.stdout
    manifest = _manifest(tmp_path / "from-lists")
    assert list(manifest["classes"].values()) == [FOOTBALL, KNOT] and manifest["skipped"] == []
    expected = {sanitise_key(rel[:-4]): label for rel, label in lists["val"]}
    assert _labels(tmp_path / "from-lists", "validation") == expected
    assert _snapshot(data) == before


def test_videomae_lists_read_labels_as_written_with_comments_and_crlf(tmp_path):
    """VideoMAE's train.csv/val.csv/test.csv: '<path> <label>' separated by spaces, no header, absolute
    paths; integer labels are class indices by value (10 is class 10, not the 3rd name in sorted order)."""
    videos, lists = tmp_path / "videos", tmp_path / "lists"
    labels = [0, 1, 10, 1, 0, 10]
    for i in range(6):
        _clip(videos / f"video_{i}.webm", seed=i)
    lists.mkdir()
    (lists / "train.csv").write_text("".join(f"{videos}/video_{i}.webm {labels[i]}\n" for i in range(4)))
    (lists / "val.csv").write_bytes(("# VideoMAE val list\r\n\r\n" + "".join(
        f"{videos}/video_{i}.webm  {labels[i]}\r\n" for i in (4, 5)) + "\r\n").encode())
    (lists / "test.csv").write_text("".join(f"{videos}/video_{i}.webm {labels[i]}\n" for i in (4, 5)))
    before = _snapshot(videos), _snapshot(lists)

    result = _prepare("videolist", lists, "--shards", tmp_path / "shards")
    assert result.exit_code == 0, result.output
    assert "videolist splits: test.csv -> test (2), train.csv -> train (4), val.csv -> validation (2)" in result.stdout
    manifest = _manifest(tmp_path / "shards")
    assert len(manifest["classes"]) == 11 and manifest["classes"]["10"] == "10"
    stored = _labels(tmp_path / "shards", "train")
    assert {key.rsplit("/", 1)[1]: label for key, label in stored.items()} == \
        {f"video_{i}": labels[i] for i in range(4)}
    assert "8 of 11 classes have no sample" in result.stderr
    assert (_snapshot(videos), _snapshot(lists)) == before


def test_one_list_file_names_its_split_and_rejects_formats_it_cannot_read(tmp_path):
    folder = tmp_path / "mine"
    for i in range(3):
        _clip(folder / "clips" / f"c{i}.webm", seed=i)
    good = folder / "holdout_val_list.txt"
    good.write_text("# my clips\npath label\n\nclips/c0.webm throw_ball\nclips/c1.webm catch\n\tclips/c2.webm\tcatch\n")
    result = _prepare("videolist", good, "--shards", tmp_path / "shards")
    assert result.exit_code == 0, result.output
    assert "videolist splits: holdout_val_list.txt -> validation (3)" in result.stdout
    assert list(_manifest(tmp_path / "shards")["classes"].values()) == ["catch", "throw_ball"]

    for name, text, message in (
            ("commas.txt", "clips/c0.webm,catch\n", "is comma-separated without a header; add the header 'path,label'"),
            ("frames.txt", "clips/c0 8 1\n", "a video list holds '<path> <label>'"),
            ("mixed.txt", "clips/c0.webm catch\nclips/c1.webm\n", "has no label but other train videos have one")):
        (folder / name).write_text(text)
        bad = _prepare("videolist", folder / name, "--shards", tmp_path / name)
        assert bad.exit_code == 2 and len(bad.stderr.splitlines()) == 1 and message in bad.stderr, bad.output
        assert not (tmp_path / name).exists()


def _image_folder(root: Path, splits: tuple[str, ...], per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for c, name in enumerate(("cat", "dog")):
            for i in range(per_class):
                image = np.full((32, 32, 3), 60 + 120 * c, np.uint8) + rng.integers(0, 20, (32, 32, 3), dtype=np.uint8)
                write_image(root / split / name / f"{i}.jpg", image)
    return root


def test_a_val_folder_is_the_validation_split_and_validates(tmp_path):
    src = _image_folder(tmp_path / "pets", ("train", "val"))
    before = _snapshot(src)
    result = _prepare("imagefolder", src, "--shards", tmp_path / "shards")
    assert result.exit_code == 0, result.output
    assert "imagefolder splits: train/ -> train (8), val/ -> validation (8)" in result.stdout
    assert list(_manifest(tmp_path / "shards")["splits"]) == ["train", "validation"]
    assert _snapshot(src) == before

    run = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(tmp_path / "shards"),
                              "--out", str(tmp_path / "run"), "--set", "model.img_size=32", "--set", "train.epochs=1",
                              "--set", "train.batch_size=4", "--set", "data.workers=0"])
    assert run.exit_code == 0, run.output
    assert "best validation top-1" in run.stdout and "no validation split" not in run.stdout
    scored = runner.invoke(app, ["eval", "--run", str(tmp_path / "run"), "--split", "val", "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["split"] == "validation"  # 'val' finds the split by the table


def test_shards_with_an_old_val_split_validate_and_val_split_must_exist(tmp_path):
    src = _image_folder(tmp_path / "pets", ("train", "val", "test"), per_class=2)
    assert _prepare("imagefolder", src, "--shards", tmp_path / "shards").exit_code == 0
    old = tmp_path / "shards" / "dataset.json"  # as adaptcli wrote it before the split table: 'val'
    manifest = json.loads(old.read_text())
    manifest["splits"] = {("val" if k == "validation" else k): v for k, v in manifest["splits"].items()}
    old.write_text(json.dumps(manifest))

    def dry_run(*sets: str):
        args = ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(tmp_path / "shards"),
                "--out", str(tmp_path / "run"), "--set", "model.img_size=32", "--dry-run"]
        return runner.invoke(app, [*args, *[a for s in sets for a in ("--set", s)]])

    assert "validate on 'val' (4)" in dry_run().stdout
    assert "validate on 'val' (4)" in dry_run("data.val_split=valid").stdout
    refused = dry_run("data.val_split=holdout")
    assert refused.exit_code == 2 and refused.stderr.splitlines() == [
        f"error: data.val_split=holdout: {tmp_path / 'shards'} has no split 'holdout' (it has: test, train, val); "
        "set --set data.val_split to one of them, or null to train without validation"]
    assert not (tmp_path / "run").exists()

    only = _image_folder(tmp_path / "two", ("train", "testing"), per_class=2)
    prepared = _prepare("imagefolder", only, "--shards", tmp_path / "two-shards")
    assert "imagefolder splits: testing/ -> test (4), train/ -> train (4)" in prepared.stdout
    args = ["finetune", "--method", "linear", "--recipe", "quick", "--data", str(tmp_path / "two-shards"),
            "--out", str(tmp_path / "run2"), "--set", "model.img_size=32", "--dry-run"]
    assert "no validation split" in runner.invoke(app, args).stdout  # the default: validation when there is one
    refused = runner.invoke(app, [*args, "--set", "data.val_split=valid"])
    assert refused.exit_code == 2 and len(refused.stderr.splitlines()) == 1
    assert "data.val_split=valid: " in refused.stderr and "has no split 'valid' (it has: test, train)" in refused.stderr


def test_two_folders_for_one_split_are_refused(tmp_path):
    src = _image_folder(tmp_path / "pets", ("train", "val", "Validation"), per_class=1)
    result = _prepare("imagefolder", src, "--shards", tmp_path / "shards")
    assert result.exit_code == 2 and result.stderr.splitlines() == [
        f"error: imagefolder data in {src}: 'Validation' and 'val' would both be the split 'validation'; "
        "remove or rename one of them"]
    assert not (tmp_path / "shards").exists()


def test_a_truncated_download_is_listed_as_damaged_with_the_rule(tmp_path):
    src = tmp_path / "clips"
    for i in range(2):
        _clip(src / "train" / "wave" / f"ok{i}.webm", seed=i, frames=40)
    whole = _clip(tmp_path / "whole.webm", seed=3, frames=40).read_bytes()
    (src / "train" / "wave" / "cut.webm").write_bytes(whole[: len(whole) // 2])  # a download that stopped half-way
    result = _prepare("videofolder", src, "--shards", tmp_path / "shards")
    assert result.exit_code == 0, result.output
    assert f"warning: skipped 1 samples (see {tmp_path / 'shards' / 'dataset.json'} \"skipped\")" in result.stderr
    [skipped] = _manifest(tmp_path / "shards")["skipped"]
    assert skipped["key"] == "wave/cut" and skipped["reason"].startswith("truncated: decoded ")
    assert "s its container declares (damaged when short by more than max(0.5 s, 10%))" in skipped["reason"]
    assert _manifest(tmp_path / "shards")["splits"]["train"]["samples"] == 2


def test_ucf101_hmdb51_and_ssv2_as_mmaction2s_tools_leave_them(tmp_path):
    """tools/data/{ucf101,hmdb51,sthv2}: the release's files under data/<name>/annotations/ (unzip -j,
    split files moved out of testTrainMulti_7030_splits/) and the clips under data/<name>/videos/."""
    from adaptcli.data.synthetic import write_avi, write_ssv2_layout

    data = tmp_path / "data"
    ucf = data / "ucf101"
    (ucf / "annotations").mkdir(parents=True)
    (ucf / "annotations" / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    train, test = [], []
    for label, name in enumerate(("ApplyEyeMakeup", "HandstandPushups"), 1):
        for group in (1, 8, 9):  # UCF101's quirk: the HandstandPushups folder holds v_HandStandPushups_*.avi
            rel = f"{name}/v_{name.replace('Handstand', 'HandStand')}_g{group:02d}_c01.avi"
            write_avi(ucf / "videos" / rel, moving_square("left" if label == 1 else "right", 8, 32, 32, seed=group))
            (test if group == 1 else train).append(f"{rel} {label}" if group > 1 else rel)
    (ucf / "annotations" / "trainlist01.txt").write_bytes("".join(f"{line}\r\n" for line in train).encode())
    (ucf / "annotations" / "testlist01.txt").write_bytes("".join(f"{line}\r\n" for line in test).encode())

    hmdb = data / "hmdb51"
    (hmdb / "annotations").mkdir(parents=True)
    for c, name in enumerate(("brush_hair", "wave")):
        lines = []
        for i in range(3):
            clip = f"{name}_u_nm_np1_fr_goo_{i}.avi"
            write_avi(hmdb / "videos" / name / clip, moving_square("up" if c else "down", 8, 32, 32, seed=i))
            lines.append(f"{clip} {1 if i < 2 else 2} ")
        (hmdb / "annotations" / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")

    sthv2 = data / "sthv2"
    clips = [(str(10 + i), ["Pushing [something] from left to right", "Pushing [something] from right to left"][i % 2],
              ["a cup"], moving_square("right" if i % 2 == 0 else "left", 8, 32, 32, seed=i)) for i in range(6)]
    write_ssv2_layout(sthv2, clips, {"train": ["10", "11", "12", "13"], "validation": ["14", "15"]}, naming="prefixed")
    (sthv2 / "20bn-something-something-v2").rename(sthv2 / "videos")
    (sthv2 / "annotations").mkdir()
    for label_file in sthv2.glob("something-something-v2-*.json"):
        label_file.rename(sthv2 / "annotations" / label_file.name)
    before = _snapshot(data)

    for name, src, line, counts in (
            ("ucf101", ucf, "ucf101 splits: annotations/trainlist01.txt -> train (4), annotations/testlist01.txt -> test (2)",
             {"train": 4, "test": 2}),
            ("hmdb51", hmdb, f"hmdb51 splits: tag 1 of {hmdb / 'annotations'}/*_test_split1.txt -> train (4), "
                             f"tag 2 of {hmdb / 'annotations'}/*_test_split1.txt -> test (2)", {"train": 4, "test": 2}),
            ("ssv2", sthv2, "ssv2 splits: annotations/something-something-v2-train.json -> train (4), "
                            "annotations/something-something-v2-validation.json -> validation (2)",
             {"train": 4, "validation": 2})):
        result = _prepare(name, src, "--shards", tmp_path / name)
        assert result.exit_code == 0, result.output
        assert line in result.stdout and result.stderr == ""
        assert {s: i["samples"] for s, i in _manifest(tmp_path / name)["splits"].items()} == counts
    assert list(_manifest(tmp_path / "ucf101")["classes"].values()) == ["ApplyEyeMakeup", "HandstandPushups"]
    assert _manifest(tmp_path / "ucf101")["skipped"] == []
    assert _snapshot(data) == before


def test_the_list_file_names_users_have_name_their_split():
    from adaptcli.data.splits import split_named_in

    named = {"train.csv": "train", "validate.csv": "validation", "val.csv": "validation", "test.csv": "test",
             "kinetics_val.csv": "validation", "kinetics-400_train.csv": "train", "kinetics-700_test.csv": "test",
             "kinetics400_val_list_videos.txt": "validation", "sthv2_train_list_videos.txt": "train",
             "ucf101_val_split_1_videos.txt": "validation", "Training.txt": "train", "dev.lst": "validation",
             "train800.txt": None, "trainlist01.txt": None, "train_val.csv": None, "list.csv": None}
    assert {name: split_named_in(name) for name in named} == named
