"""``prepare --fps``: frames stored at a lower rate, stride sampling spanning the same seconds; the
projection printed before writing, and the refusal when it does not fit."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.config import resolve
from adaptcli.data.stream import samples as samples_module
from adaptcli.data.stream.samples import SampleDecoder, frame_fields, sample_stride
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.synthetic import write_video
from tests.data.shard_reader import decode_image, read_split

runner = CliRunner()
FRAMES, FPS = 96, 30  # 3.2 s clips at 30 fps
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _grey(index: int) -> int:
    """Frame ``index`` is one flat grey, 8 levels from its neighbours' (codecs round greys by a few levels)."""
    return 10 + 8 * (index % 24)


def _kinetics(root: Path, clips: int = 4) -> Path:
    """Kinetics as distributed (annotation CSVs, clips named by YouTube id and times), 30 fps mp4 clips."""
    (root / "annotations").mkdir(parents=True)
    frames = np.stack([np.full((32, 32, 3), _grey(i), np.uint8) for i in range(FRAMES)])
    rows = {"train": [], "validate": []}
    for i in range(clips):
        split = "validate" if i == clips - 1 else "train"
        label = ("abseiling", "juggling")[i % 2]
        rows[split].append(f"{label},vid{i:02d},0,10,{split}\n")
        write_video(root / split / label / f"vid{i:02d}_000000_000010.mp4", frames, fps=FPS, codec="mpeg4",
                    options={"qscale": "2", "g": "1"})
    for split, lines in rows.items():
        (root / "annotations" / f"{split}.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "".join(lines))
    return root


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory) -> Path:
    return _kinetics(tmp_path_factory.mktemp("k400"))


def _prepare(src: Path, out: Path, *extra: str):
    return runner.invoke(app, ["prepare", "kinetics", str(src), "--shards", str(out), "--no-progress",
                               "--workers", "0", *extra])


@pytest.fixture(scope="module")
def prepared(kinetics, tmp_path_factory) -> dict[float, Path]:
    folders = {}
    for fps in (30.0, 7.5):
        out = tmp_path_factory.mktemp(f"fps{fps}")
        extra = () if fps == FPS else ("--fps", str(fps))
        result = _prepare(kinetics, out, *extra)
        assert result.exit_code == 0, result.output
        folders[fps] = out
    return folders


def test_fps_7_5_stores_a_quarter_of_the_frames(prepared):
    full, quarter = read_split(prepared[30.0], "train"), read_split(prepared[7.5], "train")
    assert set(full) == set(quarter) and len(full) == 3
    for key, sample in quarter.items():
        record = json.loads(sample["json"])
        assert record["frames"] == FRAMES // 4 and record["fps"] == 30 and record["stored_fps"] == 7.5
        assert json.loads(full[key]["json"])["frames"] == FRAMES
        assert sum(name.endswith(".jpg") for name in sample) == FRAMES // 4
        greys = [float(decode_image(data).mean()) for data in frame_fields(sample)]
        assert all(abs(grey - _grey(4 * j)) < 3 for j, grey in enumerate(greys)), greys  # frames 0, 4, 8, ...
    manifest = json.loads((prepared[7.5] / "dataset.json").read_text())
    assert manifest["settings"]["fps"] == 7.5 and "fps" not in json.loads(
        (prepared[30.0] / "dataset.json").read_text())["settings"]
    assert manifest["splits"]["train"]["frames"]["max"] == FRAMES // 4
    for folder in prepared.values():  # bytes per sample per split: the shards' size over their samples
        split = json.loads((folder / "dataset.json").read_text())["splits"]["train"]
        size = sum((folder / name).stat().st_size for name in split["shards"])
        assert split["bytes"] == size and split["bytes_per_sample"] == round(size / split["samples"])


def test_a_source_below_the_rate_keeps_its_own(kinetics, tmp_path):
    assert _prepare(kinetics, tmp_path / "o", "--fps", "60").exit_code == 0
    for sample in read_split(tmp_path / "o", "train").values():
        record = json.loads(sample["json"])
        assert record["frames"] == FRAMES and record["stored_fps"] == 30


@pytest.mark.parametrize("train", [False, True])
def test_kinetics_recipe_clips_span_the_same_seconds_at_7_5_fps(prepared, train, monkeypatch):
    """The frames the training and test streams sample, in seconds of the clip, at 30 and at 7.5 fps."""
    config = resolve("k400", "adaptformer")  # VideoMAE: 16 frames, stride 4 at the source rate, 5x3 views
    spec = StreamSpec.from_config(config.data, 32, config.model.num_frames, MEAN, STD)
    assert (spec.sampling, spec.num_frames, spec.stride) == ("stride", 16, 4)
    decoder = SampleDecoder(spec, "video", train=train, flip=False, views=(5, 1))
    sampled: list[list[int]] = []
    real = samples_module.clip_indices

    def spy(*args, **kwargs):
        sampled.append(real(*args, **kwargs))
        return sampled[-1]

    monkeypatch.setattr(samples_module, "clip_indices", spy)
    seconds: dict[float, dict[str, list[list[float]]]] = {}
    for fps, folder in prepared.items():
        seconds[fps] = {}
        for key, sample in read_split(folder, "train").items():
            sampled.clear()
            decoder({**sample, "__key__": key}, random.Random(0))
            stored = json.loads(sample["json"])["stored_fps"]
            assert len(sampled) == (1 if train else 5)
            seconds[fps][key] = [[i / stored for i in clip] for clip in sampled]
    for key, clips in seconds[7.5].items():
        for at_7_5, at_30 in zip(clips, seconds[30.0][key]):
            assert at_7_5[-1] - at_7_5[0] == pytest.approx(at_30[-1] - at_30[0]) == pytest.approx(15 * 4 / FPS)
            if not train:  # the same seconds of the clip, to within one stored frame (1/7.5 s)
                assert abs(at_7_5[0] - at_30[0]) < 1 / 7.5
        if not train:  # the 5 test clips spread from the start to the end of the clip, as at 30 fps
            assert clips[0][0] == 0 and clips[-1][-1] == pytest.approx(seconds[30.0][key][-1][-1], abs=1 / 7.5)


def test_shards_without_a_stored_rate_sample_as_before(prepared):
    """Shards written before ``stored_fps`` was recorded kept every frame: the stride is used as it is."""
    spec = StreamSpec(img_size=32, num_frames=16, mean=MEAN, std=STD, sampling="stride", stride=4)
    old = json.dumps({"id": "x", "frames": FRAMES, "fps": 30.0}).encode()
    assert sample_stride({"json": old}, spec) == 4
    assert sample_stride({}, spec) == 4
    new = json.dumps({"id": "x", "frames": 24, "fps": 30.0, "stored_fps": 7.5}).encode()
    assert sample_stride({"json": new}, spec) == 1


def _small_disk(monkeypatch, free: int) -> None:
    real = shutil.disk_usage

    def usage(path):
        return real(path)._replace(free=free)

    monkeypatch.setattr(shutil, "disk_usage", usage)


def test_prepare_refuses_before_writing_a_shard_when_the_projection_does_not_fit(kinetics, prepared, tmp_path,
                                                                                   monkeypatch):
    actual = sum(p.stat().st_size for p in prepared[30.0].glob("*.tar"))
    _small_disk(monkeypatch, actual // 3)
    out = tmp_path / "shards"
    result = _prepare(kinetics, out)
    assert result.exit_code == 2
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and "do not fit in the" in error[0] and "--ignore-space" in error[0], result.output
    assert not out.exists()  # nothing written, not even the folder
    out.mkdir()  # a folder that was there stays, still empty
    result = _prepare(kinetics, out)
    assert result.exit_code == 2 and "do not fit" in result.stderr and out.is_dir() and not any(out.iterdir())

    result = _prepare(kinetics, tmp_path / "anyway", "--ignore-space")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "anyway").glob("*.tar")) == sorted(
        p.name for p in prepared[30.0].glob("*.tar"))


def test_dry_run_prints_the_projection_only(kinetics, prepared, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    _small_disk(monkeypatch, 1)  # a dry run projects, it does not refuse
    result = _prepare(kinetics, out, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kinetics: projected ") and "CPU-seconds" in lines[0] and "free there" in lines[0]
    assert "for 4 clips" in lines[0] and not out.exists()


def test_the_projection_is_near_the_written_size(kinetics, prepared):
    from adaptcli.data.prepare.encode import EncodeOptions
    from adaptcli.data.prepare.projection import project
    from adaptcli.data.prepare.sources.base import SourceOptions
    from adaptcli.data.prepare.sources.registry import list_dataset

    listing = list_dataset("kinetics", kinetics, SourceOptions()).listings[0][1]
    items = [item for split in listing.splits.values() for item in split]
    for fps, folder in prepared.items():
        projection = project(items, EncodeOptions("video", 256, 90, fps), shards=2)
        actual = sum(p.stat().st_size for p in folder.glob("*.tar"))
        assert projection is not None and projection.samples == 4 and projection.cpu_seconds > 0
        # every item was sampled: exact but for tar's padding of each shard to a 10 kB record
        assert abs(projection.bytes - actual) <= 2 * 10240 // 2, (fps, projection.bytes, actual)


def test_fps_on_images_is_refused(tmp_path):
    from tests.data.standins import build_imagefolder

    src = build_imagefolder(tmp_path / "imgs", corrupt=False)
    result = runner.invoke(app, ["prepare", "imagefolder", str(src), "--shards", str(tmp_path / "o"), "--fps", "5"])
    assert result.exit_code == 2 and "--fps sets the frame rate of video" in result.stderr
    assert not (tmp_path / "o").exists()


def test_each_part_projects_and_checks_its_own_share(kinetics, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    result = _prepare(kinetics, out, "--part", "1/2", "--dry-run")  # part 1 of 2: the train shard, 3 clips
    assert result.exit_code == 0, result.output
    assert "for 3 clips" in result.stdout and not out.exists()
    assert _prepare(kinetics, out, "--merge", "--dry-run").exit_code == 2
    _small_disk(monkeypatch, 1000)
    result = _prepare(kinetics, out, "--part", "2/2")
    assert result.exit_code == 2 and "do not fit" in result.stderr, result.output
    assert not list(out.rglob("*.tar")) and not (out / ".parts" / "2-of-2").exists()
