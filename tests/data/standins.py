"""Builders of small stand-ins for the real dataset layouts (real file formats, tiny sizes)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from adaptcli.data.synthetic import moving_square, write_avi, write_image, write_ssv2_layout

DIRECTIONS = ["left", "right", "up", "down"]
TEMPLATES = {d: f"Moving [something] {d}" for d in DIRECTIONS}


def ssv2_clips(count: int, first_id: int = 1000, height: int = 48, width: int = 64):
    """``count`` clips of 6..17 frames; the class is the direction of motion."""
    clips = []
    for i in range(count):
        direction = DIRECTIONS[i % 4]
        frames = moving_square(direction, 6 + (i * 5) % 12, height, width, seed=i)
        clips.append((str(first_id + i), TEMPLATES[direction], ["a box"], frames))
    return clips


def build_ssv2(root: Path, naming: str = "labels") -> dict:
    """24 train, 6 validation, 4 test clips; plus one corrupt, one truncated and one missing clip."""
    clips = ssv2_clips(34)
    ids = [c[0] for c in clips]
    splits = {"train": ids[:24], "validation": ids[24:30], "test": ids[30:]}
    write_ssv2_layout(root, clips, splits, naming=naming, extra_ids={"train": ["999999"]})
    videos = root / "20bn-something-something-v2"
    (videos / f"{ids[3]}.webm").write_bytes(b"\x1aE\xdf\xa3 not really a webm" * 20)  # corrupt
    long_clip = moving_square("left", 48, 48, 64, seed=99)
    from adaptcli.data.synthetic import write_webm

    data = write_webm(videos / f"{ids[25]}.webm", long_clip).read_bytes()
    (videos / f"{ids[25]}.webm").write_bytes(data[: 2 * len(data) // 3])  # truncated
    frames = {c[0]: len(c[3]) for c in clips}
    return {"clips": clips, "splits": splits, "frames": frames, "corrupt": ids[3], "truncated": ids[25],
            "missing": "999999"}


def build_hmdb51(root: Path) -> tuple[Path, Path]:
    """3 classes x 3 AVI clips, split files for split 1 (one listed clip has no file)."""
    data, splits = root / "hmdb51", root / "splits" / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for c, name in enumerate(["brush_hair", "cartwheel", "jump"]):
        lines = []
        for i in range(3):
            clip = f"{name}_clip#{i}_f_cm_np1_ri_med_{i}.avi"
            write_avi(data / name / clip, moving_square(DIRECTIONS[c], 8 + i, 48, 64, seed=10 * c + i))
            lines.append(f"{clip} {1 if i < 2 else 2}")
        lines.append(f"{name}_absent.avi 1")
        lines.append(f"{name}_unused.avi 0")
        (splits / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return data, splits.parent


def _colour_image(label: int, seed: int, size: tuple[int, int] = (40, 30)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(size[1], size[0], 3), dtype=np.uint8)
    image[..., label % 3] += np.uint8(120 + 10 * (label // 3))
    return image


def build_vtab(root: Path, tasks=("cifar", "dtd")) -> Path:
    for t, task in enumerate(tasks):
        base = root / task
        lines: dict[str, list[str]] = {"train800": [], "val200": [], "test": []}
        n = 0
        for split, count in (("train800", 8), ("val200", 3), ("test", 5)):
            for i in range(count):
                label = (i + t) % 3
                ext = "png" if i % 2 else "jpg"
                write_image(base / "images" / f"{n:05d}.{ext}", _colour_image(label, n))
                lines[split].append(f"images/{n:05d}.{ext} {label}")
                n += 1
        lines["train800val200"] = lines["train800"] + lines["val200"]
        for split, rows in lines.items():
            (base / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return root


def build_cifar100(root: Path, train: int = 20, test: int = 10) -> Path:
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        record = {b"data": data, b"fine_labels": [int(i * 7 % 100) for i in range(n)],
                  b"coarse_labels": [int(i % 20) for i in range(n)],
                  b"filenames": [f"img_{i}.png".encode() for i in range(n)],
                  b"batch_label": f"{split} batch".encode()}
        with open(base / split, "wb") as f:
            pickle.dump(record, f, protocol=2)
    meta = {b"fine_label_names": [f"class_{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]}
    with open(base / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root


class _Evil:
    """Unpickling this would run a shell command (the test checks that it never does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def write_malicious_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump({b"fine_label_names": _Evil(marker)}, f, protocol=2)


def build_svhn(root: Path, train: int = 12, test: int = 6) -> Path:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for split, n in (("train", train), ("test", test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = np.array([[1 + i % 10] for i in range(n)], dtype=np.uint8)  # includes 10 (= digit 0)
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})
    return root


def build_food101(root: Path) -> Path:
    base = root / "food-101"
    classes = ["apple_pie", "baby_back_ribs", "sushi"]
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "classes.txt").write_text("\n".join(classes) + "\n")
    rows: dict[str, list[str]] = {"train": [], "test": []}
    n = 0
    for c, name in enumerate(classes):
        for i in range(4):
            write_image(base / "images" / name / f"{1000 + n}.jpg", _colour_image(c, n))
            rows["train" if i < 3 else "test"].append(f"{name}/{1000 + n}")
            n += 1
    for split, lines in rows.items():
        (base / "meta" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def build_fgvc(root: Path, name: str = "CUB_200_2011") -> Path:
    base = root / name
    maps: dict[str, dict[str, int]] = {"train": {}, "val": {}, "test": {}}
    n = 0
    for label in range(4):
        for i, split in enumerate(["train", "train", "val", "test"]):
            rel = f"images/{label:03d}.Bird_{label}/Bird_{label}_{n:04d}.jpg"
            write_image(base / rel, _colour_image(label, n, size=(50, 40)))
            maps[split][rel] = label
            n += 1
    for split, mapping in maps.items():
        (base / f"{split}.json").write_text(json.dumps(mapping))
    return root


def build_imagefolder(root: Path, per_class: dict[str, int] | None = None, corrupt: bool = True) -> Path:
    per_class = per_class or {"cat": 6, "dog": 5, "fox": 4}
    for split, scale in (("train", 1), ("val", 1)):
        for c, (name, count) in enumerate(per_class.items()):
            for i in range(count * scale):
                ext = "png" if i % 3 == 0 else "jpg"
                write_image(root / split / name / f"img {i}.v2.{ext}", _colour_image(c, 100 * c + i))
    if corrupt:
        (root / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    return root


def build_videofolder(root: Path) -> Path:
    from adaptcli.data.synthetic import write_webm

    for split, count in (("train", 3), ("test", 2)):
        for c, name in enumerate(["left", "right"]):
            for i in range(count):
                frames = moving_square(name, 6 + i, 48, 64, seed=c * 10 + i)  # type: ignore[arg-type]
                if i == 0:
                    write_avi(root / split / name / f"clip{i}.avi", frames)
                else:
                    write_webm(root / split / name / f"clip{i}.webm", frames)
    return root
