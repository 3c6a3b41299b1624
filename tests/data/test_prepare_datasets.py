"""Every other dataset family prepares from its stand-in through the CLI."""

import json

import numpy as np
import pytest
from tests.data import standins
from tests.data.shard_reader import decode_image, read_split


def _manifest(out):
    return json.loads((out / "dataset.json").read_text())


def test_hmdb51(tmp_path, run_cli):
    data, splits = standins.build_hmdb51(tmp_path)
    out = tmp_path / "out"
    result = run_cli("prepare", "hmdb51", data, "--split-dir", splits, "--split-id", "1", "--shards", out,
                     "--no-progress", "--workers", "2")
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert manifest["classes"] == {"0": "brush_hair", "1": "cartwheel", "2": "jump"}
    assert manifest["settings"]["split_id"] == 1
    train, test = read_split(out, "train"), read_split(out, "test")
    assert len(train) == 6 and len(test) == 3
    assert all("." not in key for key in train)
    for key, sample in train.items():
        name = key.split("/")[0]
        assert int(sample["cls"]) == ["brush_hair", "cartwheel", "jump"].index(name)
        record = json.loads(sample["json"])
        assert record["frames"] == len([k for k in sample if k.endswith(".jpg")]) == record["frames"]
        assert record["fps"] == 30 and record["file"].endswith(".avi")
    assert {s["reason"] for s in manifest["skipped"]} == {"file not found"}
    assert len(manifest["skipped"]) == 3 and "warning: skipped 3 samples" in result.output
    missing = run_cli("prepare", "hmdb51", data, "--shards", tmp_path / "o2", "--no-progress")
    assert missing.exit_code == 2 and "--split-dir" in missing.output
    wrong = run_cli("prepare", "hmdb51", data, "--split-dir", splits, "--split-id", "2", "--shards",
                    tmp_path / "o3", "--no-progress")
    assert wrong.exit_code == 2 and "_test_split2.txt" in wrong.output


def test_vtab_all_tasks_and_one_task(tmp_path, run_cli):
    src = standins.build_vtab(tmp_path / "vtab-1k")
    out = tmp_path / "out"
    result = run_cli("prepare", "vtab", src, "--shards", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "17 of the 19 VTAB tasks are not under" in result.output
    for task in ("cifar", "dtd"):
        manifest = _manifest(out / task)
        assert manifest["settings"]["task"] == task and manifest["modality"] == "image"
        counts = {s: manifest["splits"][s]["samples"] for s in manifest["splits"]}
        assert counts == {"train800": 8, "val200": 3, "train800val200": 11, "test": 5}
        assert manifest["classes"] == {"0": "0", "1": "1", "2": "2"}
        samples = read_split(out / task, "train800")
        exts = {next(k for k in s if k in ("jpg", "png")) for s in samples.values()}
        assert exts == {"jpg", "png"}  # source bytes kept
        png_key = next(k for k, s in samples.items() if "png" in s)
        original = (src / task / "images" / f"{png_key.split('/')[-1]}.png").read_bytes()
        assert samples[png_key]["png"] == original
    one = run_cli("prepare", "vtab", src, "--task", "dtd", "--shards", tmp_path / "one", "--no-progress")
    assert one.exit_code == 0 and (tmp_path / "one" / "dtd" / "dataset.json").is_file()
    assert not (tmp_path / "one" / "cifar").exists()


def test_cifar100_pickles(tmp_path, run_cli):
    src = standins.build_cifar100(tmp_path / "c")
    out = tmp_path / "out"
    result = run_cli("prepare", "cifar100", src, "--shards", out, "--no-progress", "--samples-per-shard", "8")
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert manifest["classes"]["7"] == "class_7" and len(manifest["classes"]) == 100
    assert manifest["splits"]["train"]["samples"] == 20 and len(manifest["splits"]["train"]["shards"]) == 3
    import pickle

    with open(src / "cifar-100-python" / "train", "rb") as f:
        record = pickle.load(f, encoding="bytes")
    samples = read_split(out, "train")
    for i in (0, 13):
        sample = samples[f"train_{i:06d}"]
        expected = record[b"data"][i].reshape(3, 32, 32).transpose(1, 2, 0)
        assert np.array_equal(decode_image(sample["png"]), expected)  # lossless
        assert int(sample["cls"]) == record[b"fine_labels"][i]


def test_malicious_pickle_is_refused_without_running(tmp_path, run_cli):
    src = standins.build_cifar100(tmp_path / "c")
    marker = tmp_path / "pwned"
    standins.write_malicious_pickle(src / "cifar-100-python" / "meta", marker)
    result = run_cli("prepare", "cifar100", src, "--shards", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2
    assert "refusing global" in result.output and "system" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not marker.exists()
    standins.write_malicious_pickle(src / "cifar-100-python" / "train", marker)
    (src / "cifar-100-python" / "meta").unlink()
    standins.build_cifar100(tmp_path / "c2")
    (src / "cifar-100-python" / "meta").write_bytes((tmp_path / "c2" / "cifar-100-python" / "meta").read_bytes())
    result = run_cli("prepare", "cifar100", src, "--shards", tmp_path / "out2", "--no-progress")
    assert result.exit_code == 2 and not marker.exists()


def test_cifar_pickle_with_wrong_structure(tmp_path, run_cli):
    import pickle

    src = standins.build_cifar100(tmp_path / "c")
    with open(src / "cifar-100-python" / "test", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"fine_labels": [0, 1]}, f, protocol=2)
    result = run_cli("prepare", "cifar100", src, "--shards", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2 and "not a CIFAR-100 pickle" in result.output


def test_svhn_mat(tmp_path, run_cli):
    src = standins.build_svhn(tmp_path / "svhn")
    out = tmp_path / "out"
    result = run_cli("prepare", "svhn", src, "--shards", out, "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert list(manifest["splits"]) == ["train", "test"] and manifest["splits"]["train"]["samples"] == 12
    import scipy.io

    mat = scipy.io.loadmat(str(src / "train_32x32.mat"))
    samples = read_split(out, "train")
    for i in range(12):
        sample = samples[f"train_{i:06d}"]
        assert int(sample["cls"]) == int(mat["y"][i, 0]) % 10
        assert np.array_equal(decode_image(sample["png"]), mat["X"][..., i])
    assert int(samples["train_000009"]["cls"]) == 0  # label 10 is the digit 0


def test_food101(tmp_path, run_cli):
    src = standins.build_food101(tmp_path / "f")
    out = tmp_path / "out"
    result = run_cli("prepare", "food101", src, "--shards", out, "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert manifest["classes"] == {"0": "apple_pie", "1": "baby_back_ribs", "2": "sushi"}
    train = read_split(out, "train")
    assert len(train) == 9 and len(read_split(out, "test")) == 3
    for key, sample in train.items():
        assert int(sample["cls"]) == ["apple_pie", "baby_back_ribs", "sushi"].index(key.split("/")[0])
        assert sample["jpg"] == (src / "food-101" / "images" / f"{key}.jpg").read_bytes()


def test_fgvc(tmp_path, run_cli):
    src = standins.build_fgvc(tmp_path / "fgvc")
    out = tmp_path / "out"
    result = run_cli("prepare", "fgvc", src, "--dataset", "CUB_200_2011", "--shards", out, "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert manifest["settings"]["fgvc_dataset"] == "CUB_200_2011" and len(manifest["classes"]) == 4
    assert {s: i["samples"] for s, i in manifest["splits"].items()} == {"train": 8, "validation": 4, "test": 4}
    assert "fgvc splits: CUB_200_2011/train.json -> train (8), CUB_200_2011/val.json -> validation (4)" in result.output
    for key, sample in read_split(out, "validation").items():
        assert int(sample["cls"]) == int(key.split("/")[1][:3])
    missing = run_cli("prepare", "fgvc", src, "--shards", tmp_path / "o2", "--no-progress")
    assert missing.exit_code == 2 and "--dataset" in missing.output


def test_imagefolder_with_corrupt_image(tmp_path, run_cli):
    src = standins.build_imagefolder(tmp_path / "imgs")
    out = tmp_path / "out"
    result = run_cli("prepare", "imagefolder", src, "--shards", out, "--no-progress", "--workers", "2")
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert manifest["classes"] == {"0": "cat", "1": "dog", "2": "fox"}
    assert manifest["splits"]["train"]["samples"] == 15 and manifest["splits"]["validation"]["samples"] == 15
    (skip,) = manifest["skipped"]
    assert skip["key"] == "cat/broken" and skip["reason"].startswith("unreadable image")
    assert "warning: skipped 1 samples" in result.output
    keys = set(read_split(out, "train"))
    assert "cat/img_0_v2" in keys and all("." not in k and " " not in k for k in keys)


def test_videofolder(tmp_path, run_cli):
    src = standins.build_videofolder(tmp_path / "vids")
    out = tmp_path / "out"
    result = run_cli("prepare", "videofolder", src, "--shards", out, "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert manifest["modality"] == "video" and manifest["classes"] == {"0": "left", "1": "right"}
    train = read_split(out, "train")
    assert sorted(train) == ["left/clip0", "left/clip1", "left/clip2", "right/clip0", "right/clip1", "right/clip2"]
    assert len([k for k in train["right/clip2"] if k.endswith(".jpg")]) == 8


@pytest.mark.parametrize("args,message", [
    (["nosuch"], "unknown dataset 'nosuch'"),
    (["svhn", "--splits", "valid"], "svhn has no split 'valid'"),
])
def test_bad_dataset_arguments(tmp_path, run_cli, args, message):
    src = standins.build_svhn(tmp_path / "s", train=2, test=2)
    name, *rest = args
    result = run_cli("prepare", name, src, "--shards", tmp_path / "out", "--no-progress", *rest)
    assert result.exit_code == 2 and message in result.output
