"""The common video datasets as distributed, built tiny with real video files: UCF101 (classInd.txt and the
official lists), Kinetics (annotation CSVs, clips named by YouTube id and times) and a plain video list;
prepared, trained one step, and the recipes' values against VideoMAE's scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import resolve
from adaptcli.data.synthetic import moving_square, write_avi, write_video

runner = CliRunner()
CLASSES = ("left", "right")


def _clip(path: Path, direction: str, seed: int) -> None:
    frames = moving_square(direction, 8, 32, 32, seed=seed)
    write_avi(path, frames) if path.suffix == ".avi" else write_video(path, frames)


def _prepare(*args: str) -> dict:
    result = runner.invoke(app, ["prepare", *map(str, args), "--no-progress", "--workers", "0"])
    assert result.exit_code == 0, result.output
    return json.loads((Path(args[args.index("--shards") + 1]) / "dataset.json").read_text())


def _train_one_step(shards: Path, out: Path, recipe: str) -> None:
    result = runner.invoke(app, ["finetune", "--method", "linear", "--recipe", recipe, "--data", str(shards),
                                 "--out", str(out), "--model", "video_vit_test", "--set", "model.num_frames=4",
                                 "--set", "model.img_size=32", "--set", "train.epochs=1", "--set",
                                 "train.warmup_epochs=0", "--set",  # the recipes' 5 warm-up epochs outlast 1 epoch
                                 "train.batch_size=2", "--set", "data.workers=0", "--set",
                                 "train.max_steps_per_epoch=1"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["steps"] == 1


def test_ucf101_official_split_with_a_missing_clip(tmp_path):
    root = tmp_path / "ucf"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 MoveLeft\n2 MoveRight\n")
    train, test = [], []
    for label, (name, direction) in enumerate(zip(("MoveLeft", "MoveRight"), CLASSES), 1):
        for group in range(1, 4):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            _clip(root / "UCF-101" / rel, direction, seed=group)
            (test if group == 1 else train).append((rel, label))
    (lists / "trainlist01.txt").write_text("".join(f"{rel} {label}\r\n" for rel, label in train)
                                            + "MoveLeft/v_MoveLeft_g09_c01.avi 1\r\n")
    (lists / "testlist01.txt").write_text("".join(f"{rel}\r\n" for rel, _ in test))
    manifest = _prepare("ucf101", root, "--shards", tmp_path / "shards")
    assert list(manifest["classes"].values()) == ["MoveLeft", "MoveRight"]
    assert manifest["splits"]["train"]["samples"] == 4 and manifest["splits"]["test"]["samples"] == 2
    assert [s["key"] for s in manifest["skipped"]] == ["MoveLeft/v_MoveLeft_g09_c01"]
    assert manifest["settings"]["split_id"] == 1
    _train_one_step(tmp_path / "shards", tmp_path / "run", "ucf101")


def test_ucf101_refuses_a_list_line_outside_its_classes(tmp_path):
    lists = tmp_path / "ucf" / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 A\n2 B\n")
    (lists / "trainlist01.txt").write_text("../../etc/passwd 1\n")
    (lists / "testlist01.txt").write_text("")
    result = runner.invoke(app, ["prepare", "ucf101", str(tmp_path / "ucf"), "--shards", str(tmp_path / "o")])
    assert result.exit_code == 2 and "is not '<Class>/<clip>.avi'" in result.stderr


def _kinetics(root: Path) -> None:
    notes = root / "annotations"
    notes.mkdir(parents=True)
    header = "label,youtube_id,time_start,time_end,split\n"
    rows = {"train": [], "validate": []}
    for i in range(6):
        label, direction = ("moving left", "left") if i % 2 else ("moving right", "right")
        split = "validate" if i >= 4 else "train"
        youtube_id = f"vid{i:02d}-_x"
        rows[split].append(f"{label},{youtube_id},{i},{i + 10},{split}\n")
        folder = root / ("val" if split == "validate" else "train") / label
        _clip(folder / f"{youtube_id}_{i:06d}_{i + 10:06d}.webm", direction, seed=i)
    rows["train"].append("moving left,gone00,5,15,train\n")  # deleted from YouTube
    for split, lines in rows.items():
        (notes / f"{split}.csv").write_text(header + "".join(lines))


def test_kinetics_as_distributed_prepares_and_trains_one_step(tmp_path):
    _kinetics(tmp_path / "k400")
    shards = tmp_path / "shards"
    manifest = _prepare("kinetics", tmp_path / "k400", "--shards", shards)
    assert list(manifest["classes"].values()) == ["moving left", "moving right"]
    assert manifest["splits"]["train"]["samples"] == 4 and manifest["splits"]["validation"]["samples"] == 2
    assert [(s["key"], s["reason"]) for s in manifest["skipped"]] == [("gone00_000005_000015", "no video file")]

    _train_one_step(shards, tmp_path / "run", "k400")


def test_videolist_prepares_paths_labels_and_splits(tmp_path):
    src = tmp_path / "clips"
    lines = ["path,label,split"]
    for i in range(4):
        direction = CLASSES[i % 2]
        _clip(src / f"c{i}.webm", direction, seed=i)
        lines.append(f"c{i}.webm,{direction},{'train' if i < 3 else 'validation'}")
    lines.append("gone.webm,left,train")
    (src / "list.csv").write_text("\n".join(lines) + "\n")
    manifest = _prepare("videolist", src / "list.csv", "--shards", tmp_path / "shards")
    assert manifest["modality"] == "video" and list(manifest["classes"].values()) == ["left", "right"]
    assert manifest["splits"]["train"]["samples"] == 3 and manifest["splits"]["validation"]["samples"] == 1
    assert [s["key"] for s in manifest["skipped"]] == ["gone"]
    _train_one_step(tmp_path / "shards", tmp_path / "run", "quick")


@pytest.mark.parametrize("recipe,values", [
    # MCG-NJU/VideoMAE scripts/kinetics/videomae_vit_base_patch16_224_tubemasking_ratio_0.9_epoch_1600/finetune.sh
    ("k400", {"train.optimizer": "adamw", "train.lr": 5e-4, "train.weight_decay": 0.05, "train.epochs": 75,
              "train.warmup_epochs": 5, "train.min_lr": 1e-6, "train.label_smoothing": 0.1,
              "model.drop_path": 0.1, "model.num_frames": 16, "data.stride": 4, "eval.views": "5x3",
              "data.repeated_aug": 2, "model.head_dropout": 0.0}),  # --num_sample 2, no --fc_drop_rate
    # MCG-NJU/VideoMAE scripts/ucf101/videomae_vit_base_patch16_224_tubemasking_ratio_0.75_epoch_3200/finetune.sh
    ("ucf101", {"train.optimizer": "adamw", "train.lr": 5e-4, "train.weight_decay": 0.05, "train.epochs": 100,
                "train.warmup_epochs": 5, "train.min_lr": 1e-5, "train.label_smoothing": 0.1,
                "model.drop_path": 0.2, "model.num_frames": 16, "data.stride": 4, "eval.views": "5x3",
                "data.repeated_aug": 2, "model.head_dropout": 0.5}),  # --num_sample 2 --fc_drop_rate 0.5
])
def test_video_recipes_hold_videomaes_values(recipe, values):
    config = resolve(recipe, "adaptformer").to_dict()
    # run_class_finetuning.py's defaults (the scripts keep them; UCF101's sets layer decay and warm-up lr)
    values = {**values, "train.mixup": 0.8, "train.cutmix": 1.0, "train.mixup_prob": 1.0,
              "train.mixup_switch_prob": 0.5, "train.mixup_mode": "batch", "train.random_erasing": 0.25,
              "data.rand_augment": "rand-m7-n4-mstd0.5-inc1",
              "train.layer_decay": 0.75 if recipe == "k400" else 0.7,
              "train.warmup_lr": 1e-6 if recipe == "k400" else 1e-8}
    for key, expected in values.items():
        section, name = key.split(".")
        assert config[section][name] == expected, key
