"""``adaptcli prepare ssv2`` on a stand-in: counts, labels, frames, the skipped list."""

import json

from tests.data.shard_reader import decode_image, read_split


def test_ssv2_counts_labels_and_frames(ssv2, ssv2_shards):
    manifest = json.loads((ssv2_shards / "dataset.json").read_text())
    assert manifest["version"] == 1 and manifest["dataset"] == "ssv2" and manifest["modality"] == "video"
    classes = manifest["classes"]
    assert sorted(classes.values()) == sorted(t.replace("[", "").replace("]", "")
                                              for t in {c[1] for c in ssv2["clips"]})
    by_id = {c[0]: c for c in ssv2["clips"]}
    bad = {ssv2["corrupt"], ssv2["truncated"]}
    for split, ids in ssv2["splits"].items():
        samples = read_split(ssv2_shards, split)
        expected = sorted(set(ids) - bad)
        assert sorted(samples) == expected
        assert manifest["splits"][split]["samples"] == len(expected)
        counts = []
        for key, sample in samples.items():
            frames = sorted(k for k in sample if k.endswith(".jpg"))
            assert frames == [f"{i:03d}.jpg" for i in range(ssv2["frames"][key])]
            counts.append(len(frames))
            record = json.loads(sample["json"])
            assert record["id"] == key and record["frames"] == len(frames)
            assert record["fps"] == 12 and record["size"] == [64, 48]
            if split == "test":
                assert "cls" not in sample
            else:
                template = by_id[key][1]
                assert record["template"] == template and record["placeholders"] == ["a box"]
                assert classes[sample["cls"].decode()] == template.replace("[", "").replace("]", "")
        assert manifest["splits"][split]["frames"]["min"] == min(counts)
        assert manifest["splits"][split]["frames"]["max"] == max(counts)
        assert manifest["splits"][split]["frames"]["total"] == sum(counts)
    first = read_split(ssv2_shards, "train")[ssv2["splits"]["train"][0]]
    assert decode_image(first["000.jpg"]).shape == (48, 64, 3)
    assert manifest["settings"]["short_side"] == 256 and manifest["settings"]["quality"] == 90


def test_ssv2_skipped_list(ssv2, ssv2_shards):
    manifest = json.loads((ssv2_shards / "dataset.json").read_text())
    reasons = {s["key"]: s for s in manifest["skipped"]}
    assert set(reasons) == {ssv2["corrupt"], ssv2["truncated"], ssv2["missing"]}
    assert reasons[ssv2["missing"]]["reason"] == "no video file"
    assert reasons[ssv2["truncated"]]["reason"].startswith("truncated")
    assert reasons[ssv2["truncated"]]["split"] == "validation"
    assert reasons[ssv2["corrupt"]]["split"] == "train"
    assert all(set(s) == {"split", "key", "path", "reason"} for s in manifest["skipped"])


def test_ssv2_warning_line_and_summary(ssv2, tmp_path, run_cli):
    result = run_cli("prepare", "ssv2", ssv2["root"], "--shards", tmp_path / "o", "--splits", "validation",
                     "--workers", "1", "--no-progress")
    assert result.exit_code == 0
    assert 'warning: skipped 1 samples (see' in result.output and '"skipped"' in result.output
    assert "wrote 5 samples in 1 shards" in result.output and "on disk" in result.output


def test_ssv2_prefixed_naming_and_explicit_folders(ssv2, tmp_path, run_cli):
    import shutil

    labels = tmp_path / "labels_elsewhere"
    labels.mkdir()
    for kind in ("labels", "train", "validation", "test"):
        shutil.copy(ssv2["root"] / "labels" / f"{kind}.json", labels / f"something-something-v2-{kind}.json")
    result = run_cli("prepare", "ssv2", tmp_path / "nowhere", "--labels", labels, "--videos",
                     ssv2["root"] / "20bn-something-something-v2", "--shards", tmp_path / "o",
                     "--splits", "test", "--no-progress", "--short-side", "24")
    # a missing SRC is fine when both folders are given explicitly? no: SRC must exist
    assert result.exit_code == 2 and "does not exist" in result.output
    (tmp_path / "nowhere").mkdir()
    result = run_cli("prepare", "ssv2", tmp_path / "nowhere", "--labels", labels, "--videos",
                     ssv2["root"] / "20bn-something-something-v2", "--shards", tmp_path / "o",
                     "--splits", "test", "--no-progress", "--short-side", "24")
    assert result.exit_code == 0, result.output
    samples = read_split(tmp_path / "o", "test")
    assert sorted(samples) == sorted(ssv2["splits"]["test"])
    sample = next(iter(samples.values()))
    assert decode_image(sample["000.jpg"]).shape == (24, 32, 3)  # short side 48 -> 24, never up
    assert json.loads(sample["json"])["stored_size"] == [32, 24]


def test_ssv2_bad_label_files_are_one_line_errors(ssv2, tmp_path, run_cli):
    import shutil

    root = tmp_path / "ssv2"
    (root / "labels").mkdir(parents=True)
    (root / "20bn-something-something-v2").symlink_to(ssv2["root"] / "20bn-something-something-v2")
    result = run_cli("prepare", "ssv2", root, "--shards", tmp_path / "o", "--no-progress")
    assert result.exit_code == 2 and "labels.json not found" in result.output
    assert len(result.output.strip().splitlines()) == 1
    shutil.copy(ssv2["root"] / "labels" / "labels.json", root / "labels" / "labels.json")
    (root / "labels" / "train.json").write_text('[{"id": "1000", "template": ')
    result = run_cli("prepare", "ssv2", root, "--shards", tmp_path / "o", "--no-progress")
    assert result.exit_code == 2 and "not valid JSON" in result.output
    assert len(result.output.strip().splitlines()) == 1
    (root / "labels" / "train.json").write_text('[{"id": "1000", "template": "Unknown [something]"}]')
    result = run_cli("prepare", "ssv2", root, "--shards", tmp_path / "o", "--no-progress")
    assert result.exit_code == 2 and "has no class" in result.output
    assert not (tmp_path / "o" / "dataset.json").exists()
