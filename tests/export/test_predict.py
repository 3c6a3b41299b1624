"""``adaptcli predict`` on raw files: the same labels and scores from a run and from every export of it
(merged and full safetensors, adapter-only with its backbone, timm and hub folders, ONNX); videos too;
unreadable files listed and skipped. ``adaptcli eval --export``: the run's metrics from every export
PyTorch runs."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from adaptcli.data.synthetic import moving_square, write_image, write_video
from tests.engine.conftest import COLOURS, colour_images
from tests.export.conftest import invoke


def _raw_images(folder: Path) -> list[str]:
    names = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        for j, image in enumerate(colour_images(2, rgb, seed=100 + i)):
            suffix = "png" if j else "jpg"
            write_image(folder / f"{name}{j}.{suffix}", np.kron(image, np.ones((2, 2, 1), dtype=np.uint8)))
            names.append(f"{name}{j}.{suffix}")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return names


def _predict(*args) -> tuple[dict[str, list[dict]], str]:
    out = Path(args[-1])
    result = invoke("predict", *args[:-1], "--out", out, "--no-progress", "--top-k", "3")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {Path(row["path"]).name: row["top"] for row in rows}, result.stderr


def _exported(run: Path, tmp_path: Path, mode: str, fmt: str, name: str) -> Path:
    out = tmp_path / name
    result = invoke("export", "--run", run, f"--{mode}", "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_every_export_of_a_run_predicts_what_the_run_predicts(runs, tmp_path):
    pytest.importorskip("onnxruntime")
    run = runs.get("arc")
    images = tmp_path / "raw"
    names = _raw_images(images)
    reference, stderr = _predict(run, images, tmp_path / "run.jsonl")
    assert sorted(reference) == sorted(names)
    assert "skipped 1 file(s)" in stderr and "broken.jpg" in stderr
    sources = {
        "merged": [_exported(run, tmp_path, "merge", "safetensors", "m.safetensors")],
        "full": [_exported(run, tmp_path, "full", "safetensors", "f.safetensors")],
        "adapter": [_exported(run, tmp_path, "adapter-only", "safetensors", "a.safetensors"), "--backbone",
                    run / "backbone.safetensors"],
        "timm": [_exported(run, tmp_path, "merge", "timm", "timm-folder")],
        "hub": [_exported(run, tmp_path, "full", "hub", "hub-folder")],
        "onnx": [_exported(run, tmp_path, "merge", "onnx", "m.onnx")],
    }
    for name, source in sources.items():
        got, _ = _predict(source[0], images, *source[1:], tmp_path / f"{name}.jsonl")
        assert sorted(got) == sorted(reference), name
        for file, top in reference.items():
            assert [t["class"] for t in got[file]] == [t["class"] for t in top], (name, file)
            assert all(abs(a["score"] - b["score"]) <= 1e-4 for a, b in zip(got[file], top)), (name, file)


def test_videos_are_predicted_over_the_runs_views_and_written_as_csv(runs, tmp_path):
    run = runs.get("arc", "motion", "--model", "video_vit_test", "--set", "model.num_frames=4")
    clips = tmp_path / "clips"
    for i, direction in enumerate(("left", "right")):
        write_video(clips / f"{direction}.webm", moving_square(direction, 12, 32, 32, seed=i))
    (tmp_path / "list.txt").write_text("clips/missing.webm\n")  # a list naming a clip that is not there
    sources = {"run.csv": [run], "merged.csv": [_exported(run, tmp_path, "merge", "safetensors", "v.safetensors")],
               "timm.csv": [_exported(run, tmp_path, "merge", "timm", "v-timm")],
               "adapter.csv": [_exported(run, tmp_path, "adapter-only", "safetensors", "va.safetensors"),
                               "--backbone", run / "backbone.safetensors"]}
    if importlib.util.find_spec("onnxruntime") is not None:
        sources["onnx.csv"] = [_exported(run, tmp_path, "merge", "onnx", "v.onnx")]
    for out, source in sources.items():
        result = invoke("predict", source[0], clips, tmp_path / "list.txt", *source[1:], "--out", tmp_path / out,
                        "--no-progress")
        assert result.exit_code == 0, result.output
        assert "missing.webm" in result.stderr and "skipped 1 file(s)" in result.stderr
    rows = {name: list(csv.DictReader((tmp_path / name).open())) for name in sources}
    assert len(rows["run.csv"]) == 2 * 2  # two videos x two classes (top-k capped at the classes)
    for name in sources:
        for a, b in zip(rows["run.csv"], rows[name], strict=True):
            assert a["class"] == b["class"] and abs(float(a["score"]) - float(b["score"])) <= 1e-4, name


def test_predict_refuses_bad_input_in_one_line(runs, tmp_path):
    run = runs.get("arc")
    (tmp_path / "notes.csv").write_text("mine")
    for args, message in (
        ([tmp_path / "nothing", tmp_path], "is not a run folder or an export adaptcli reads (hub, peft or timm folders; .onnx or .safetensors files)"),
        ([run, tmp_path / "empty"], "no image or video file"),
        ([run, tmp_path, "--out", tmp_path / "notes.csv"], "adaptcli did not write it"),
        ([run, tmp_path, "--out", tmp_path / "p.txt"], "name a .csv or .jsonl file"),
    ):
        (tmp_path / "empty").mkdir(exist_ok=True)
        write_image(tmp_path / "one.png", colour_images(1, (200, 0, 0), 0)[0])
        result = invoke("predict", *args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "notes.csv").read_text() == "mine"


def test_eval_takes_every_torch_export_of_a_run_and_gives_the_runs_metrics(runs, tmp_path):
    run = runs.get("arc")
    data = json.loads((run / "run.json").read_text())["data"]
    assert invoke("eval", "--run", run, "--json").exit_code == 0
    on_run = json.loads((run / "eval.json").read_text())
    exports = {"merged": _exported(run, tmp_path, "merge", "safetensors", "m.safetensors"),
               "full": _exported(run, tmp_path, "full", "safetensors", "f.safetensors"),
               "timm": _exported(run, tmp_path, "merge", "timm", "timm-folder"),
               "hub": _exported(run, tmp_path, "full", "hub", "hub-folder")}
    for name, path in exports.items():
        result = invoke("eval", "--export", path, "--data", data, "--json")
        assert result.exit_code == 0, (name, result.output)
        got = json.loads(result.stdout[result.stdout.index("{"):])
        for key in ("top1", "top5", "per_class", "samples"):
            assert got[key] == on_run[key], (name, key)
    refused = invoke("eval", "--export", exports["merged"], "--checkpoint", run / "backbone.safetensors",
                     "--data", data)
    assert refused.exit_code == 2 and "--checkpoint goes with an adapter-only export" in refused.stderr
    if importlib.util.find_spec("onnxruntime") is not None:
        onnx = _exported(run, tmp_path, "merge", "onnx", "m.onnx")
        refused = invoke("eval", "--export", onnx, "--data", data)
        assert refused.exit_code == 2 and "runs in onnxruntime" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1


def test_a_file_of_the_other_modality_is_skipped_with_its_kind_named(runs, tmp_path):
    run = runs.get("arc", "motion", "--model", "video_vit_test", "--set", "model.num_frames=4")
    write_video(tmp_path / "clip.webm", moving_square("left", 12, 32, 32, seed=0))
    write_image(tmp_path / "photo.png", colour_images(1, (200, 0, 0), 0)[0])
    result = invoke("predict", run, tmp_path / "clip.webm", tmp_path / "photo.png", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "photo.png (an image, but the model takes videos)" in result.stderr, result.stderr
