"""Zero work is not success, and a dry run runs the real run's checks (issue 32, items 2 and 3).

Each case runs the CLI on files in the layout users have and asserts the exit code, the one-line
message, and that nothing the user owns changed (no folder left behind, sources untouched).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.synthetic import moving_square, write_avi
from tests.reliability.conftest import TINY, checksums

runner = CliRunner()


def cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *parts: str) -> None:
    """Exit 2 with one line on stderr that holds every part, and no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(part in lines[0] for part in parts), lines[0]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------- data in the users' layouts


@pytest.fixture(scope="module")
def ucf101(tmp_path_factory) -> Path:
    """UCF101 as downloaded: UCF-101/<Class>/v_<Class>_gGG_cCC.avi and ucfTrainTestlist with CRLF lists."""
    root = tmp_path_factory.mktemp("ucf") / "UCF101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 MoveLeft\r\n2 MoveRight\r\n")
    train, test = [], []
    for label, (name, direction) in enumerate((("MoveLeft", "left"), ("MoveRight", "right")), 1):
        for group in range(1, 4):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            write_avi(root / "UCF-101" / rel, moving_square(direction, 8, 32, 32, seed=group))
            (test if group == 1 else train).append((rel, label))
    (lists / "trainlist01.txt").write_text("".join(f"{rel} {label}\r\n" for rel, label in train))
    (lists / "testlist01.txt").write_text("".join(f"{rel}\r\n" for rel, _ in test))
    return root


@pytest.fixture(scope="module")
def ucf_shards(ucf101, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ucf_shards") / "shards"
    result = cli("prepare", "ucf101", ucf101, "--shards", out, "--no-progress", "--workers", "0")
    assert result.exit_code == 0, result.output
    return out


def with_empty_split(shards: Path, dst: Path, split: str) -> Path:
    """A copy whose dataset.json records ``split`` with 0 samples, as prepare wrote it before it refused that."""
    shutil.copytree(shards, dst)
    manifest = json.loads((dst / "dataset.json").read_text())
    for name in manifest["splits"][split]["shards"]:
        (dst / name).unlink()
    manifest["splits"][split].update(shards=[], samples=0, shard_samples=[])
    (dst / "dataset.json").write_text(json.dumps(manifest))
    return dst


# ---------------------------------------------------------------------------- prepare


def test_prepare_ucf101_pointed_at_the_wrong_folder_writes_nothing(ucf101, tmp_path):
    before = checksums(ucf101)
    out = tmp_path / "shards"
    # the lists folder instead of the root: classInd.txt is found beside it, no clip is
    result = cli("prepare", "ucf101", ucf101 / "ucfTrainTestlist", "--shards", out, "--no-progress")
    refused(result, "ucf101: split 'train' found none of its 4 listed file(s)",
            f"looked for {ucf101 / 'ucfTrainTestlist' / 'MoveLeft' / 'v_MoveLeft_g02_c01.avi'}", "root folder")
    assert not out.exists() and checksums(ucf101) == before


def test_prepare_with_every_file_of_a_split_unreadable_leaves_no_dataset(tmp_path):
    src = tmp_path / "photos"
    for name in ("cat", "dog"):
        (src / "train" / name).mkdir(parents=True)
        (src / "train" / name / "1.jpg").write_bytes(b"not a jpeg")  # e.g. a failed download's HTML page
    before = checksums(src)
    out = tmp_path / "new" / "shards"
    refused(cli("prepare", "imagefolder", src, "--shards", out, "--no-progress", "--workers", "0"),
            "imagefolder: none of the 2 file(s) of split 'train' could be read", "no dataset.json was written")
    assert not (tmp_path / "new").exists() and checksums(src) == before
    existing = tmp_path / "mine"
    existing.mkdir()  # a folder the user made: kept, and nothing in it looks like finished shards
    refused(cli("prepare", "imagefolder", src, "--shards", existing, "--no-progress", "--workers", "0"))
    assert existing.is_dir() and not (existing / "dataset.json").exists()


# ---------------------------------------------------------------------------- finetune and its dry run


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_quick_recipe_on_video_names_the_small_video_model_and_leaves_no_folder(ucf_shards, tmp_path, dry):
    out = tmp_path / "runs" / "quick"
    result = cli("finetune", "--method", "linear", "--recipe", "quick", "--data", ucf_shards, "--out", out,
                 *(["--dry-run"] if dry else []))
    refused(result, "the shards hold videos but 'test_vit' is an image model", "--model video_vit_test")
    assert not (tmp_path / "runs").exists()


def test_the_model_the_refusal_names_plans_and_trains(ucf_shards, tmp_path):
    args = ["finetune", "--method", "linear", "--recipe", "quick", "--data", ucf_shards, "--out", tmp_path / "run",
            "--model", "video_vit_test", "--set", "model.img_size=32", "--set", "train.epochs=1"]
    planned = cli(*args, "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert not (tmp_path / "run").exists()
    trained = cli(*args)
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["state"] == "finished"


@pytest.mark.parametrize("split,setting", [("train", []), ("validation", ["--set", "data.val_split=validation"])])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_a_split_with_0_samples_is_refused_at_plan_time(tiny_shards, tmp_path, split, setting, dry):
    data = with_empty_split(tiny_shards, tmp_path / "data", split)
    before = checksums(data)
    result = cli("finetune", "--method", "linear", "--recipe", "quick", "--data", data, "--out", tmp_path / "run",
                 *TINY, *setting, *(["--dry-run"] if dry else []))
    refused(result, f"split '{split}' of {data} has 0 samples")
    assert not (tmp_path / "run").exists() and checksums(data) == before


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_out_holding_user_files_is_refused_by_the_dry_run_too(tiny_shards, tmp_path, dry):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("mine")
    result = cli("finetune", "--method", "linear", "--recipe", "quick", "--data", tiny_shards, "--out", out, *TINY,
                 *(["--dry-run"] if dry else []))
    refused(result, f"--out {out} holds files that are not an adaptcli run")
    assert sorted(p.name for p in out.iterdir()) == ["todo.txt"] and (out / "todo.txt").read_text() == "mine"


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_a_checkpoint_of_another_model_leaves_no_folder_and_keeps_the_users(tiny_shards, tmp_path, dry):
    from adaptcli.io import save_tensors

    import torch

    checkpoint = tmp_path / "other.safetensors"
    save_tensors(checkpoint, {"pos_embed": torch.zeros(1, 5, 7)}, {})
    args = ["finetune", "--method", "linear", "--recipe", "quick", "--data", tiny_shards, *TINY,
            "--checkpoint", checkpoint, *(["--dry-run"] if dry else [])]
    result = cli(*args, "--out", tmp_path / "a" / "b" / "run")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder the user made is never deleted
    assert cli(*args, "--out", empty).exit_code == 2
    assert empty.is_dir() and not any(empty.iterdir())


# ---------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def image_run(tiny_shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "run"
    result = cli("finetune", "--method", "linear", "--recipe", "quick", "--data", tiny_shards, "--out", out, *TINY,
                 "--set", "train.epochs=1", "--set", "train.warmup_epochs=0")
    assert result.exit_code == 0, result.output
    return out


def test_predict_on_a_path_that_does_not_exist(image_run, tmp_path):
    result = cli("predict", image_run, tmp_path / "photo.jpg", "--no-progress", "--out", tmp_path / "p.csv")
    refused(result, f"{tmp_path / 'photo.jpg'} does not exist")
    assert list(tmp_path.iterdir()) == []


def test_predict_on_a_folder_without_images(image_run, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.md").write_text("no images here")
    refused(cli("predict", image_run, tmp_path / "photos", "--no-progress"),
            f"no image or video file (.avi, .bmp", f"in {tmp_path / 'photos'}")


def test_predict_with_no_file_predicted_writes_nothing(image_run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"<html>not found</html>")
    before = checksums(photos)
    result = cli("predict", image_run, photos, "--no-progress", "--out", tmp_path / "p.csv")
    refused(result, "none of the 1 file(s) given could be predicted", f"{photos / 'a.jpg'}: unreadable")
    assert "predicted 0" not in result.output and not (tmp_path / "p.csv").exists() and checksums(photos) == before


# ---------------------------------------------------------------------------- suite


@pytest.fixture(scope="module")
def vtab_shards(tmp_path_factory) -> Path:
    from tests.data.standins import build_vtab

    root = tmp_path_factory.mktemp("vtab")
    build_vtab(root / "vtab-1k", tasks=("dtd",))
    result = cli("prepare", "vtab", root / "vtab-1k", "--shards", root / "shards", "--no-progress", "--workers", "0")
    assert result.exit_code == 0, result.output
    return root / "shards"


SUITE = ["--method", "linear", "--recipe", "quick", "--set", "model.img_size=32", "--sweep", "train.lr=1e-3,1e-2"]


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_suite_refuses_a_model_of_the_wrong_modality_before_training_any_run(vtab_shards, tmp_path, dry):
    out = tmp_path / "suite"
    result = cli("suite", "vtab", "--data", vtab_shards, "--out", out, *SUITE, "--model", "video_vit_test",
                 "--no-progress", *(["--dry-run"] if dry else []))
    refused(result, "the shards hold images but 'video_vit_test' is a video model", "--model test_vit")
    assert not out.exists()


def test_suite_dry_run_refuses_a_task_split_with_0_samples(vtab_shards, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with_empty_split(vtab_shards / "dtd", data / "dtd", "train800val200")
    result = cli("suite", "vtab", "--data", data, "--out", tmp_path / "suite", *SUITE, "--dry-run")
    refused(result, f"split 'train800val200' of {data / 'dtd'} has 0 samples")
    assert not (tmp_path / "suite").exists()


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_shards_gone_from_the_data_folder_are_refused_before_the_run_starts(tiny_shards, tmp_path, dry):
    data = tmp_path / "data"
    shutil.copytree(tiny_shards, data)
    for shard in data.glob("train-*.tar"):
        shard.unlink()  # a copy that skipped large files
    result = cli("finetune", "--method", "linear", "--recipe", "quick", "--data", data, "--out", tmp_path / "run",
                 *TINY, *(["--dry-run"] if dry else []))
    refused(result, f"the training shards of {data} are missing (train-000000.tar and 3 more)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_a_method_that_refuses_the_backbone_is_refused_before_the_run_starts(tiny_shards, tmp_path, dry):
    result = cli("finetune", "--method", "vpt_deep", "--recipe", "quick", "--data", tiny_shards, "--out",
                 tmp_path / "run", "--model", "swin_tiny_patch4_window7_224", *TINY, *(["--dry-run"] if dry else []))
    refused(result, "vpt_deep does not apply to SwinTransformer")
    assert not (tmp_path / "run").exists()
