"""VTAB-1k in its three on-disk variants: the extracted folders, V-PETL Bench's files and the TFDS
records the papers used. The same JPEG images, written in each exact layout, prepare to the same
samples; damaged records are counted and listed; a broken layout is one line, exit 2.

The TFRecord files are written as TensorFlow writes them: ``tf.train.Example`` messages serialised by
the protobuf library (from the message definitions of tensorflow/core/example/*.proto), each framed
with its length and masked CRC32C checksums.
"""

from __future__ import annotations

import functools
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from tests.data.shard_reader import decode_image, read_split

pytest.importorskip("google.protobuf")


@functools.lru_cache(maxsize=None)
def _example_class():
    """tensorflow.Example and its parts built from their .proto definitions (no TensorFlow needed); built
    once, the descriptor pool kept with the classes."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="example_test.proto", package="tensorflow", syntax="proto3")

    def message(name, fields, nested=(), oneof=None):
        m = proto.message_type.add(name=name)
        if oneof:
            m.oneof_decl.add(name=oneof)
        for number, (field_name, kind, label, type_name) in enumerate(fields, 1):
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name
            if oneof:
                f.oneof_index = 0
        for entry in nested:
            m.nested_type.append(entry)
        return m

    repeated, optional = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    message("BytesList", [("value", F.TYPE_BYTES, repeated, None)])
    message("FloatList", [("value", F.TYPE_FLOAT, repeated, None)])
    message("Int64List", [("value", F.TYPE_INT64, repeated, None)])
    message("Feature", [("bytes_list", F.TYPE_MESSAGE, optional, ".tensorflow.BytesList"),
                        ("float_list", F.TYPE_MESSAGE, optional, ".tensorflow.FloatList"),
                        ("int64_list", F.TYPE_MESSAGE, optional, ".tensorflow.Int64List")], oneof="kind")
    entry = descriptor_pb2.DescriptorProto(name="FeatureEntry")
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=optional)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=optional, type_name=".tensorflow.Feature")
    entry.options.map_entry = True
    message("Features", [("feature", F.TYPE_MESSAGE, repeated, ".tensorflow.Features.FeatureEntry")], nested=[entry])
    message("Example", [("features", F.TYPE_MESSAGE, optional, ".tensorflow.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool, {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{name}"))
                  for name in ("Example", "Features", "Feature", "BytesList", "FloatList", "Int64List")}


def _example(features: dict) -> bytes:
    """Built through constructors: protobuf 4.23's upb crashes filling a dynamic map field in place."""
    classes = _example_class()[1]
    made = {}
    for key, value in features.items():
        if isinstance(value, bytes):
            made[key] = classes["Feature"](bytes_list=classes["BytesList"](value=[value]))
        elif value and isinstance(value[0], float):
            made[key] = classes["Feature"](float_list=classes["FloatList"](value=value))
        else:
            made[key] = classes["Feature"](int64_list=classes["Int64List"](value=value))
    return classes["Example"](features=classes["Features"](feature=made)).SerializeToString()


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


def _jpeg(label: int, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 80, size=(24, 32, 3), dtype=np.uint8)
    pixels[..., label % 3] += np.uint8(150)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# Two tasks, one per kind of VTAB split rule: dtd takes TFDS train / validation / test; cifar cuts its
# val200 out of train at 90% (train[:800] covers every record of a train this small).
TFDS_SPLITS = {"dtd": {"train": [6, 4], "validation": [5], "test": [4]},  # records per shard
               "cifar": {"train": [10], "test": [3]}}
BUILDERS = {"dtd": ("dtd", "3.0.1"), "cifar": ("cifar100", "3.0.2")}


def _records(task: str) -> dict[str, list[tuple[bytes, int]]]:
    """Each TFDS split's (JPEG, label) records, in order."""
    seed = 100 if task == "cifar" else 0
    return {split: [(_jpeg(i % 3, seed + {"train": 0, "validation": 30, "test": 60}[split] + i), i % 3) for i in range(sum(shards))]
            for split, shards in TFDS_SPLITS[task].items()}


def _vtab_splits(task: str, records: dict[str, list]) -> dict[str, list]:
    """VTAB-1k's slices (task_adaptation): what the extraction wrote into each list file."""
    if task == "dtd":
        train, val = records["train"][:800], records["validation"][:200]
    else:
        cut = 90 * len(records["train"]) // 100
        train, val = records["train"][:800], records["train"][cut:cut + 200]
    return {"train800": train, "val200": val, "train800val200": train + val, "test": records["test"]}


def build_tfds(root: Path, damage: dict[tuple[str, str, int], str] | None = None) -> Path:
    """TFDS's layout: <name>/<version>/dataset_info.json + <name>-<split>.tfrecord-NNNNN-of-MMMMM."""
    for task, splits in TFDS_SPLITS.items():
        name, version = BUILDERS[task]
        folder = root / name / version
        folder.mkdir(parents=True)
        records = _records(task)
        info = {"name": name, "version": version, "splits": []}
        for split, lengths in splits.items():
            info["splits"].append({"name": split, "numBytes": "0", "shardLengths": [str(n) for n in lengths]})
            start = 0
            for shard, count in enumerate(lengths):
                blob = b""
                for index in range(start, start + count):
                    image, label = records[split][index]
                    framed = _frame(_example({"image": image, "label": [label], "id": f"{index}".encode()}))
                    if (damage or {}).get((task, split, index)) == "crc":
                        framed = framed[:40] + bytes([framed[40] ^ 0xFF]) + framed[41:]
                    blob += framed
                    if (damage or {}).get((task, split, index)) == "cut":
                        blob = blob[:-30]
                        break
                (folder / f"{name}-{split}.tfrecord-{shard:05d}-of-{len(lengths):05d}").write_bytes(blob)
                start += count
        (folder / "dataset_info.json").write_text(json.dumps(info))
        (folder / "features.json").write_text(json.dumps({"type": "tensorflow_datasets.core.features.features_dict.FeaturesDict"}))
    return root


def build_lists(root: Path, folder_names: dict[str, str]) -> Path:
    """The extracted layout: <task>/images/<split>/<index>.jpg and <task>/<split>.txt."""
    for task in TFDS_SPLITS:
        base = root / folder_names.get(task, task)
        for split, rows in _vtab_splits(task, _records(task)).items():
            lines = []
            for i, (image, label) in enumerate(rows):
                rel = f"images/{split}/{i:06d}.jpg"
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                (base / rel).write_bytes(image)
                lines.append(f"{rel} {label}")
            (base / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def _samples(out: Path, task: str) -> dict[str, dict[str, tuple[int, np.ndarray]]]:
    manifest = json.loads((out / task / "dataset.json").read_text())
    return {split: {key: (int(s["cls"]), decode_image(s["jpg"])) for key, s in read_split(out / task, split).items()}
            for split in manifest["splits"]}


def _prepare(run_cli, src: Path, out: Path, *extra: str):
    result = run_cli("prepare", "vtab", src, "--shards", out, "--no-progress", "--workers", "1", *extra)
    assert result.exit_code == 0, result.output
    return result


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tfds_records_and_vpetl_files_give_the_folder_layouts_samples(tmp_path, run_cli):
    folder = build_lists(tmp_path / "vtab-1k", {})
    vpetl = build_lists(tmp_path / "vpetl" / "vtab-1k", {"cifar": "cifar100"})  # V-PETL's folder names
    tfds = build_tfds(tmp_path / "tensorflow_datasets")
    before = {src: _tree(src) for src in (folder, vpetl, tfds)}
    printed = {name: _prepare(run_cli, src, tmp_path / f"out-{name}").output
               for name, src in (("folder", folder), ("vpetl", vpetl), ("tfds", tfds))}
    # which records became which split, in TFDS's slice notation
    assert ("vtab/cifar splits: cifar100/3.0.2 train[:800] -> train800 (10), cifar100/3.0.2 train[9:209] -> val200 (1), "
            "cifar100/3.0.2 train[:800]+train[9:209] -> train800val200 (11), cifar100/3.0.2 test -> test (3)") in printed["tfds"]
    assert "vtab/cifar splits: cifar100/train800.txt -> train800 (10)" in printed["vpetl"]
    for task in TFDS_SPLITS:
        expected = _samples(tmp_path / "out-folder", task)
        assert {s: len(v) for s, v in expected.items()} == {s: len(v) for s, v in _vtab_splits(task, _records(task)).items()}
        for name in ("vpetl", "tfds"):
            got = _samples(tmp_path / f"out-{name}", task)
            assert got.keys() == expected.keys()
            for split in expected:
                assert got[split].keys() == expected[split].keys(), (name, task, split)
                for key, (label, pixels) in expected[split].items():
                    assert got[split][key][0] == label, (name, task, split, key)
                    assert np.array_equal(got[split][key][1], pixels), (name, task, split, key)
        settings = {name: json.loads((tmp_path / f"out-{name}" / task / "dataset.json").read_text())["settings"]
                    for name in ("folder", "vpetl", "tfds")}
        assert "variant" not in settings["folder"]  # as every dataset.json written before variants
        assert settings["vpetl"]["variant"] == "vpetl" and settings["tfds"]["variant"] == "tfds"
        assert settings["tfds"]["tfds"] == "/".join(BUILDERS[task])
    assert {src: _tree(src) for src in (folder, vpetl, tfds)} == before  # the user's files untouched
    from adaptcli.protocols.report import _dataset
    from adaptcli.runs.info import RunInfo

    shown = {name: _dataset(RunInfo(data=str(tmp_path / f"out-{name}" / "dtd"), dataset="vtab"))
             for name in ("folder", "vpetl", "tfds")}  # the report's dataset column
    assert shown == {"folder": "vtab/dtd", "vpetl": "vtab/dtd (vpetl)", "tfds": "vtab/dtd (tfds)"}
    one = _prepare(run_cli, vpetl, tmp_path / "one", "--task", "cifar100")  # V-PETL's name works too
    assert (tmp_path / "one" / "cifar" / "dataset.json").is_file(), one.output


def test_damaged_records_are_counted_and_listed_not_fatal(tmp_path, run_cli):
    src = build_tfds(tmp_path / "tfds", damage={("dtd", "train", 2): "crc", ("dtd", "validation", 3): "cut"})
    result = _prepare(run_cli, src, tmp_path / "out", "--task", "dtd")
    manifest = json.loads((tmp_path / "out" / "dtd" / "dataset.json").read_text())
    skipped = {(s["split"], s["key"]): s["reason"] for s in manifest["skipped"]}
    # train record 2 (CRC) sits in train800 and train800val200; validation 3 is cut off, 4 after it is lost
    assert "data CRC mismatch" in skipped[("train800", "images/train800/000002")]
    assert "file ends inside the record" in skipped[("val200", "images/val200/000003")]
    assert "unreadable" in skipped[("val200", "images/val200/000004")]
    assert len(skipped) == 2 + 2 * 2
    assert manifest["splits"]["train800"]["samples"] == 9 and manifest["splits"]["val200"]["samples"] == 3
    samples = read_split(tmp_path / "out" / "dtd", "train800")
    assert "images/train800/000003" in samples  # keys after a damaged record keep their place
    assert "skipped 6" in result.output


@pytest.mark.parametrize("breakage", ["info", "shard", "split", "empty"])
def test_a_broken_layout_is_one_line_exit_2(tmp_path, run_cli, breakage):
    src = build_tfds(tmp_path / "tfds")
    if breakage == "info":
        (src / "dtd" / "3.0.1" / "dataset_info.json").write_text("{not json")
    elif breakage == "split":  # dtd's TFDS validation split, which val200 is cut from, is not listed
        info_path = src / "dtd" / "3.0.1" / "dataset_info.json"
        info = json.loads(info_path.read_text())
        info["splits"] = [split for split in info["splits"] if split["name"] != "validation"]
        info_path.write_text(json.dumps(info))
    elif breakage == "shard":
        (src / "dtd" / "3.0.1" / "dtd-train.tfrecord-00001-of-00002").unlink()
    else:
        src = tmp_path / "empty"
        src.mkdir()
    result = run_cli("prepare", "vtab", src, "--task", "dtd", "--shards", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert {"info": "dataset_info.json", "shard": "is missing", "split": "has no split 'validation'",
            "empty": "not found"}[breakage] in line
    assert not (tmp_path / "out" / "dtd" / "dataset.json").exists()


def test_example_features_and_the_vtab_labels_made_from_them():
    from adaptcli.data.prepare.tfrecord import parse_example
    from adaptcli.data.prepare.vtab_tfds import TFDS_TASKS

    data = _example({"image": b"\xff\xd8jpeg", "objects/size": [0, 1, 1, 0, 1],
                     "objects/pixel_coords": [10.0, 20.0, 9.2, 1.0, 2.0, 8.7, 3.0, 4.0, 12.0, 0.0, 0.0, 11.0, 5.0, 5.0, 13.0],
                     "objects/type": [3, 0, 7, 1, 2], "objects/location": [0.0, 0.0, 5.0, 1.0, 1.0, 15.0, 0.0, 0.0, 2.0,
                                                                           0.0, 0.0, 30.0, 0.0, 0.0, 25.0],
                     "label_x_position": [31], "label_orientation": [39], "neg": [-5]})
    features = parse_example(data)
    start, end = features["image"].spans[0]
    assert data[start:end] == b"\xff\xd8jpeg" and features["neg"].ints == [-5]
    assert TFDS_TASKS["clevr_count"].label(features) == 2  # 5 objects - 3
    assert TFDS_TASKS["clevr_dist"].label(features) == 2  # closest depth 8.7 lies in (8.5, 9.0]
    assert TFDS_TASKS["kitti"].label(features) == 1  # closest vehicle (types 0-2) at 15 m: (8, 20]
    assert TFDS_TASKS["dsprites_loc"].label(features) == 15 and TFDS_TASKS["dsprites_ori"].label(features) == 15
    with pytest.raises(ValueError):
        parse_example(data[:-3])


def test_vpetl_fgvc_json_splits_with_stanford_dogs_images_folder(tmp_path, run_cli):
    """V-PETL Bench's FGVC json.zip: VPT's {train,val,test}.json per dataset, under its folder names
    (StanfordDogs); the Dogs paths are relative to the official Images/ folder."""
    base = tmp_path / "fgvc" / "StanfordDogs"
    maps: dict[str, dict[str, int]] = {"train": {}, "val": {}, "test": {}}
    for n, split in enumerate(["train", "train", "val", "test"] * 2):
        rel = f"n0208{n % 2}-Breed{n % 2}/n0208{n % 2}_{n:04d}.jpg"
        (base / "Images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "Images" / rel).write_bytes(_jpeg(n % 2, n))
        maps[split][rel] = n % 2 + 1  # VPT's dogs labels start at 1
    for split, mapping in maps.items():
        (base / f"{split}.json").write_text(json.dumps(mapping))
    out = tmp_path / "out"
    result = run_cli("prepare", "fgvc", tmp_path / "fgvc", "--dataset", "StanfordDogs", "--shards", out, "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["skipped"] == [] and manifest["classes"] == {"0": "1", "1": "2"}
    assert {s: manifest["splits"][s]["samples"] for s in manifest["splits"]} == {"train": 4, "validation": 2, "test": 2}
    samples = read_split(out, "train")
    for rel, label in maps["train"].items():
        sample = samples[rel[:-4].replace(".", "_")]
        assert int(sample["cls"]) == label - 1 and sample["jpg"] == (base / "Images" / rel).read_bytes()


def test_dsprites_records_slices_labels_and_pixels(tmp_path, run_cli):
    """dsprites: one TFDS split cut 80/10/10 (val200 after 80%, test after 90%), the records before
    val200 stepped over unread, x positions binned 32 -> 16, 0/1 pixels stored as 0/255."""
    from PIL import Image

    total, folder = 1200, tmp_path / "tfds" / "dsprites" / "2.0.0"
    folder.mkdir(parents=True)
    blob, pixels = b"", []
    for i in range(total):
        bits = ((np.arange(16).reshape(4, 4) + i) % 3 == 0).astype(np.uint8)[..., None]  # 4 x 4 x 1, values 0/1
        buffer = io.BytesIO()
        Image.fromarray(bits[..., 0], mode="L").save(buffer, format="PNG")
        pixels.append(bits[..., 0])
        framed = _frame(_example({"image": buffer.getvalue(), "label_x_position": [i % 32],
                                  "label_orientation": [i % 40]}))
        if i in (100, 1000):  # a damaged data CRC: 100 is stepped over unread, 1000 lies in val200
            framed = framed[:-6] + bytes([framed[-6] ^ 0xFF]) + framed[-5:]
        blob += framed
    (folder / "dsprites-train.tfrecord-00000-of-00001").write_bytes(blob)
    (folder / "dataset_info.json").write_text(json.dumps({"name": "dsprites", "splits": [
        {"name": "train", "shardLengths": [str(total)]}]}))
    out = tmp_path / "out"
    _prepare(run_cli, tmp_path / "tfds", out, "--task", "dsprites_loc", "--splits", "val200,test")
    manifest = json.loads((out / "dsprites_loc" / "dataset.json").read_text())
    assert {s: manifest["splits"][s]["samples"] for s in manifest["splits"]} == {"val200": 199, "test": 120}
    assert [(s["key"], s["reason"]) for s in manifest["skipped"]] == [
        ("images/val200/000040", "dsprites-train.tfrecord-00000-of-00001 record 1000: data CRC mismatch")]
    for split, first in (("val200", 960), ("test", 1080)):
        samples = read_split(out / "dsprites_loc", split)
        for position in (0, 57, 199 if split == "val200" else 119):
            sample = samples[f"images/{split}/{position:06d}"]
            index = first + position
            assert int(sample["cls"]) == (index % 32) // 2
            assert np.array_equal(decode_image(sample["png"]), np.repeat(pixels[index][..., None] * 255, 3, axis=2))


def test_dataset_info_written_before_shard_lengths(tmp_path, run_cli):
    """Older tensorflow_datasets wrote numShards and statistics.numExamples instead of shardLengths."""
    src = build_tfds(tmp_path / "tfds")
    info_path = src / "cifar100" / "3.0.2" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    for split in info["splits"]:
        split["statistics"] = {"numExamples": split.pop("shardLengths")[0]}
        split["numShards"] = "1"
    info_path.write_text(json.dumps(info))
    _prepare(run_cli, src, tmp_path / "out", "--task", "cifar", "--splits", "val200,test")
    manifest = json.loads((tmp_path / "out" / "cifar" / "dataset.json").read_text())
    assert {s: manifest["splits"][s]["samples"] for s in manifest["splits"]} == {"val200": 1, "test": 3}
