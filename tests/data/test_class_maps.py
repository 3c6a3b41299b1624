"""The class map of HMDB51 and FGVC comes from the dataset's own label files, checked sample by sample
against those files, on stand-ins in the layout the datasets ship in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tests.data.shard_reader import read_split

from adaptcli.data.prepare.sources.hmdb51 import list_hmdb51
from adaptcli.data.synthetic import moving_square, write_avi, write_image

# "testTrainMulti_7030_splits" sorts between "brush_hair" and "turn": as a class it would shift turn and wave.
HMDB_CLASSES = ["wave", "brush_hair", "turn"]
TAGS = ["1", "1", "2", "0"]  # per clip of each class: two train, one test, one unused in split 1


def build_hmdb51_shipped(data: Path, splits: Path, skip_class: str | None = None) -> None:
    """``data/<class>/<clip>.avi`` and ``splits/<class>_test_split1.txt`` (``<clip>.avi <1|2|0>``)."""
    splits.mkdir(parents=True)
    for c, name in enumerate(HMDB_CLASSES):
        lines = []
        for i, tag in enumerate(TAGS):
            clip = f"{name}_clip_{i}_f_cm_np1_ri_med_{i}.avi"
            if name != skip_class:
                write_avi(data / name / clip, moving_square(["left", "right", "up"][c], 6 + i, 32, 48, seed=10 * c + i))
            lines.append(f"{clip} {tag}")
        (splits / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")


def official_hmdb51(splits: Path) -> tuple[list[str], dict[str, dict[tuple[str, str], int]]]:
    """The classes (sorted names of the split files) and, per split, (class, clip) -> class index."""
    files = sorted(splits.glob("*_test_split1.txt"))
    classes = sorted(f.name[: -len("_test_split1.txt")] for f in files)
    expected: dict[str, dict[tuple[str, str], int]] = {"train": {}, "test": {}}
    for f in files:
        name = f.name[: -len("_test_split1.txt")]
        for line in f.read_text().splitlines():
            clip, tag = line.split()
            if tag in ("1", "2"):
                expected["train" if tag == "1" else "test"][(name, clip)] = classes.index(name)
    return classes, expected


def test_hmdb51_split_folder_inside_the_root_is_no_class(tmp_path, run_cli):
    data = tmp_path / "hmdb51"
    build_hmdb51_shipped(data, data / "testTrainMulti_7030_splits")
    out = tmp_path / "out"
    result = run_cli("prepare", "hmdb51", data, "--split-id", "1", "--shards", out, "--no-progress", "--workers", "1")
    assert result.exit_code == 0, result.output
    classes, expected = official_hmdb51(data / "testTrainMulti_7030_splits")
    assert classes == ["brush_hair", "turn", "wave"]
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["classes"] == {str(i): name for i, name in enumerate(classes)}
    for split in ("train", "test"):
        got = {}
        for key, sample in read_split(out, split).items():
            got[(key.split("/")[0], json.loads(sample["json"])["file"])] = int(sample["cls"])
        assert got == expected[split]
    assert "no sample" not in result.output


def test_hmdb51_split_folder_beside_the_root_and_a_class_without_clips(tmp_path, run_cli):
    data = tmp_path / "hmdb51"
    build_hmdb51_shipped(data, tmp_path / "testTrainMulti_7030_splits", skip_class="turn")
    listing = list_hmdb51(data, None)
    assert listing.classes == ["brush_hair", "turn", "wave"]
    assert {item.meta["class"] for item in listing.splits["train"]} == {"brush_hair", "wave"}
    result = run_cli("prepare", "hmdb51", data, "--splits", "test", "--shards", tmp_path / "out", "--no-progress",
                     "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "warning: hmdb51: 1 of 3 classes have no sample in test: turn" in result.output


CUB_NAMES = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross", 3: "003.Sooty_Albatross",
             4: "004.Groove_billed_Ani", 5: "005.Crested_Auklet", 6: "006.Least_Auklet"}


def build_cub_vpt(root: Path, labels: list[int], classes_txt: bool = True) -> Path:
    """``CUB_200_2011/images/<class>/<file>.jpg``, its ``classes.txt`` (``1 001.Black_footed_Albatross``)
    and VPT's ``{train,val,test}.json`` (image path under images/ -> label as in the release, from 1)."""
    base = root / "CUB_200_2011"
    maps: dict[str, dict[str, int]] = {"train": {}, "val": {}, "test": {}}
    n = 0
    for label in labels:
        for split in ("train", "train", "val", "test"):
            rel = f"{CUB_NAMES[label]}/{CUB_NAMES[label][4:]}_{n:04d}_{796000 + n}.jpg"
            write_image(base / "images" / rel, np.full((20, 24, 3), 40 * label, np.uint8))
            maps[split][rel] = label
            n += 1
    for split, mapping in maps.items():
        (base / f"{split}.json").write_text(json.dumps(mapping))
    if classes_txt:
        (base / "classes.txt").write_text("".join(f"{k} {v}\n" for k, v in CUB_NAMES.items()))
    return base


def _check_fgvc(out: Path, base: Path, names: list[str]) -> None:
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["classes"] == {str(i): name for i, name in enumerate(names)}
    values = sorted({v for s in ("train", "val", "test") for v in json.loads((base / f"{s}.json").read_text()).values()})
    for split in ("train", "val", "test"):
        official = json.loads((base / f"{split}.json").read_text())
        stored = "validation" if split == "val" else split  # prepare's split-name table: val -> validation
        got = {json.loads(s["json"])["file"]: int(s["cls"]) for s in read_split(out, stored).values()}
        assert got == {rel: values.index(label) for rel, label in official.items()}


def test_fgvc_labels_from_1_with_gaps_map_to_0_k_with_the_dataset_class_names(tmp_path, run_cli):
    base = build_cub_vpt(tmp_path / "fgvc", [2, 5, 1, 6])
    out = tmp_path / "out"
    result = run_cli("prepare", "fgvc", tmp_path / "fgvc", "--dataset", "CUB_200_2011", "--shards", out,
                     "--no-progress", "--workers", "1")
    assert result.exit_code == 0, result.output
    _check_fgvc(out, base, [CUB_NAMES[1], CUB_NAMES[2], CUB_NAMES[5], CUB_NAMES[6]])
    assert "no sample" not in result.output


def test_fgvc_without_classes_txt_names_classes_by_label(tmp_path, run_cli):
    base = build_cub_vpt(tmp_path / "fgvc", [3, 1, 4], classes_txt=False)
    out = tmp_path / "out"
    result = run_cli("prepare", "fgvc", base, "--shards", out, "--no-progress", "--workers", "1")
    assert result.exit_code == 0, result.output
    _check_fgvc(out, base, ["1", "3", "4"])
    (base / "classes.txt").write_text("1 001.Black_footed_Albatross\n3 003.Sooty_Albatross\n")
    partial = run_cli("prepare", "fgvc", base, "--shards", tmp_path / "o2", "--no-progress", "--workers", "1")
    assert partial.exit_code == 0, partial.output
    assert "does not name the labels 4" in partial.output
    _check_fgvc(tmp_path / "o2", base, ["1", "3", "4"])


def test_empty_classes_note_names_the_classes_without_a_sample():
    from adaptcli.data.prepare.sources.base import Item, Listing, empty_classes_note

    gap = Listing("vtab", "image", ["0", "1", "2", "3"], {"train800": [Item("a", 0), Item("b", 3)], "test": [Item("c", 0)]})
    assert empty_classes_note(gap, "dtd") == "warning: vtab/dtd: 2 of 4 classes have no sample in train800, test: 1, 2"
    multi = Listing("nuswide", "image", ["sky", "sea", "dog"], {"train": [Item("a", [0, 2]), Item("b", [])]},
                    task="multi-label")
    assert empty_classes_note(multi) == "warning: nuswide: 1 of 3 classes have no sample in train: sea"
    unlabelled = Listing("ssv2", "video", ["x", "y"], {"test": [Item("a", None)]})
    assert empty_classes_note(unlabelled) is None
    assert empty_classes_note(Listing("svhn", "image", ["0", "1"], {"train": [Item("a", 1), Item("b", 0)]})) is None
