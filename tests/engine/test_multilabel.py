"""Multi-label data end to end: NUS-WIDE in its release layout and image-list CSVs, trained with
binary cross-entropy and evaluated with mAP (checked by hand on the saved scores)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from adaptcli.cli import app
from adaptcli.data.synthetic import write_image
from tests.engine.conftest import TINY

runner = CliRunner()
CONCEPTS = ["sky", "water", "animal", "person"]
COLOURS = {"sky": (40, 40, 220), "water": (40, 200, 200), "animal": (200, 120, 40), "person": (220, 40, 40)}
SHORT = ["--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=2"]


def picture(labels: list[str], seed: int) -> np.ndarray:
    """A 32 px image whose colour mixes its concepts' colours (so the labels are learnable)."""
    rng = np.random.default_rng(seed)
    base = np.mean([COLOURS[c] for c in labels], axis=0) if labels else np.array([128, 128, 128])
    return np.clip(base[None, None] + rng.integers(-30, 30, size=(32, 32, 3)), 0, 255).astype(np.uint8)


def write_nuswide(root: Path, count: dict[str, int], gone: set[tuple[str, int]]) -> dict[str, list[list[str]]]:
    """The release layout: Windows-path image lists, one 0/1 file per concept and split, Concepts81.txt.

    ``person`` never occurs in the test split (its AP is undefined there). Images in ``gone`` are
    listed but not written, as for Flickr originals that were removed.
    """
    (root / "ConceptsList").mkdir(parents=True)
    (root / "ConceptsList" / "Concepts81.txt").write_text("\r\n".join(CONCEPTS) + "\r\n")
    (root / "ImageList").mkdir()
    (root / "Groundtruth" / "TrainTestLabels").mkdir(parents=True)
    truth: dict[str, list[list[str]]] = {}
    for split, word in (("train", "Train"), ("test", "Test")):
        rng = np.random.default_rng(len(split))
        names, truth[split] = [], []
        for i in range(count[split]):
            pool = CONCEPTS if split == "train" else CONCEPTS[:3]
            labels = [c for c in pool if rng.random() < 0.4]
            folder = labels[0] if labels else "misc"
            photo = f"{i:04d}_{(1000 if split == 'train' else 5000) + i}"  # Flickr ids are unique
            name = f"{folder}\\{photo}.jpg"
            names.append(name)
            truth[split].append(labels)
            if (split, i) not in gone:
                write_image(root / "Flickr" / folder / f"{photo}.jpg", picture(labels, i))
        (root / "ImageList" / f"{word}Imagelist.txt").write_text("\r\n".join(names) + "\r\n")
        for concept in CONCEPTS:
            flags = "".join(f"{int(concept in labels)}\r\n" for labels in truth[split])
            (root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{word}.txt").write_text(flags)
    return truth


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def hand_ap(scores: list[float], positives: list[bool]) -> float:
    """Average precision: the mean, over the positives, of the precision at each positive's rank."""
    ranked = sorted(zip(scores, positives), key=lambda pair: -pair[0])
    hits, precisions = 0, []
    for rank, (_, positive) in enumerate(ranked, start=1):
        if positive:
            hits += 1
            precisions.append(hits / rank)
    return sum(precisions) / len(precisions)


def shard_labels(shards: Path) -> dict[str, list[int]]:
    found = {}
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".labels"):
                    found[member.name[: -len(".labels")]] = json.loads(tar.extractfile(member).read())
    return found


def test_nuswide_prepare_finetune_and_map_by_hand(tmp_path: Path) -> None:
    root = tmp_path / "NUS-WIDE"
    truth = write_nuswide(root, {"train": 24, "test": 12}, gone={("train", 3), ("test", 5)})
    shards = tmp_path / "shards"
    result = invoke("prepare", "nuswide", root, "--shards", shards, "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "2 listed images are missing" in result.stderr and "multi-label" in result.stdout
    manifest = json.loads((shards / "dataset.json").read_text())
    assert manifest["task"] == "multi-label" and list(manifest["classes"].values()) == CONCEPTS
    assert manifest["splits"]["train"]["samples"] == 23 and manifest["splits"]["test"]["samples"] == 11
    assert sorted(s["path"].rsplit("/", 1)[-1] for s in manifest["skipped"]) == ["0003_1003.jpg", "0005_5005.jpg"]
    stored = shard_labels(shards)
    expected = {f"{(labels[0] if labels else 'misc')}/{i:04d}_{5000 + i}": [CONCEPTS.index(c) for c in labels]
                for i, labels in enumerate(truth["test"]) if i != 5}
    assert {k: v for k, v in stored.items() if k in expected} == expected

    run = tmp_path / "run"
    result = invoke("finetune", "--method", "adaptformer", "--model", "test_vit", "--recipe", "quick",
                    "--data", shards, "--out", run, *TINY, *SHORT)
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "multi-label" and summary["metric"] == "mAP" and "best_val_top1" not in summary

    scores_file = tmp_path / "scores.safetensors"
    result = invoke("eval", "--run", run, "--split", "test", "--json", "--scores", scores_file)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert "top1" not in metrics and "top5" not in metrics
    assert metrics["samples"] == 11 and metrics["classes_without_positives"] == 1
    assert metrics["excluded_classes"] == ["person"] and metrics["per_class_ap"]["person"] is None

    from adaptcli.io import read_safetensors

    tensors, meta = read_safetensors(scores_file)
    scores, targets = tensors["scores"], tensors["targets"]
    keys = json.loads(meta["keys"])
    assert scores.shape == targets.shape == (11, 4) and keys == sorted(expected)
    assert torch.equal(targets, torch.tensor([[float(c in expected[k]) for c in range(4)] for k in keys]))
    by_hand = {}
    for c, name in enumerate(CONCEPTS[:3]):
        by_hand[name] = 100 * hand_ap(scores[:, c].tolist(), [bool(t) for t in targets[:, c]])
        assert metrics["per_class_ap"][name] == pytest.approx(by_hand[name], abs=1e-6)
    assert metrics["mAP"] == pytest.approx(sum(by_hand.values()) / 3, abs=1e-6)
    assert json.loads((run / "eval.json").read_text())["mAP"] == metrics["mAP"]

    refused = invoke("finetune", "--method", "linear", "--model", "test_vit", "--recipe", "quick", "--data", shards,
                     "--out", tmp_path / "smooth", *TINY, "--set", "train.label_smoothing=0.1")
    assert refused.exit_code == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "label_smoothing" in refused.stderr


def write_list(root: Path, rows: list[tuple[str, list[str], str]]) -> Path:
    lines = ["path,labels,split"]
    for i, (folder, labels, split) in enumerate(rows):
        rel = f"{folder}/{i:03d}.png"
        write_image(root / rel, picture(labels, i))
        lines.append(f"{rel},{';'.join(labels)},{split}")
    lines.append("gone/missing.png,sky,train")
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    return root / "list.csv"


@pytest.mark.parametrize("multi", [True, False])
def test_imagelist_prepare_finetune_eval(tmp_path: Path, multi: bool) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(36):
        split = "train" if i < 20 else "validation" if i < 28 else "test"
        if multi:
            labels = [c for c in CONCEPTS if rng.random() < 0.5] or ["sky"]
        else:
            labels = [CONCEPTS[i % 4]]
        rows.append(("pics", labels, split))
    csv_file = write_list(tmp_path / "src", rows)
    shards = tmp_path / "shards"
    result = invoke("prepare", "imagelist", csv_file, "--shards", shards, "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = json.loads((shards / "dataset.json").read_text())
    assert manifest["task"] == ("multi-label" if multi else "single-label")
    assert list(manifest["classes"].values()) == sorted(CONCEPTS)
    assert [s["split"] for s in manifest["skipped"]] == ["train"]
    assert {k: v["samples"] for k, v in manifest["splits"].items()} == {"train": 20, "validation": 8, "test": 8}

    run = tmp_path / "run"
    # multi-label with linear probing: the quick recipe's feature cache replays multi-hot targets
    method = ["linear"] if multi else ["arc", "--set", "method.dim=4"]
    result = invoke("finetune", "--method", *method, "--model", "test_vit", "--recipe", "quick", "--data", shards,
                    "--out", run, *TINY, *SHORT)
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    metric = "mAP" if multi else "top1"
    assert summary["metric"] == metric and summary["best_epoch"] in (1, 2)
    assert summary["feature_cache"] == multi
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    values = [r[f"val_{metric}"] for r in history if r["event"] == "train"]
    assert summary[f"best_val_{metric}"] == max(values) and values.index(max(values)) + 1 == summary["best_epoch"]
    result = invoke("eval", "--run", run, "--split", "test", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert metrics["samples"] == 8
    if multi:
        assert "top1" not in metrics and 0.0 <= metrics["mAP"] <= 100.0
    else:
        assert "mAP" not in metrics and 0.0 <= metrics["top1"] <= 100.0


def _predicted_scores(source: Path, images: Path, out: Path) -> dict[str, dict[str, float]]:
    """``predict --top-k`` over every class: each file's score per class, as the CLI wrote them."""
    result = invoke("predict", source, images, "--top-k", len(CONCEPTS), "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {Path(row["path"]).name: {top["class"]: top["score"] for top in row["top"]} for row in rows}


def _sigmoid_of_logits(source: Path, images: Path) -> dict[str, dict[str, float]]:
    """The same files through the library, the logits captured: sigmoid of each image's logits."""
    from adaptcli.deploy.predict import Prediction, input_files, open_predictor, predict_files

    predictor = open_predictor(source)
    logits: list[torch.Tensor] = []
    forward = predictor.forward
    predictor.forward = lambda inputs: logits.append(forward(inputs)) or logits[-1]
    files, _ = input_files([images])
    paths = [p.path for p in predict_files(predictor, files) if isinstance(p, Prediction)]
    every = torch.cat(logits).sigmoid()  # one view per image
    assert every.shape == (len(paths), len(CONCEPTS))
    return {Path(p).name: {name: float(every[i, c]) for c, name in enumerate(predictor.classes)}
            for i, p in enumerate(paths)}


def test_predict_scores_a_multi_label_model_with_independent_sigmoids(tmp_path: Path) -> None:
    """A multi-label run (and its export) scores each class on its own: sigmoid of the logits, scores that
    do not sum to 1; also for a run.json written before the task kind was recorded."""
    rng = np.random.default_rng(3)
    rows = [("pics", [c for c in CONCEPTS if rng.random() < 0.5] or ["sky"], "train" if i < 16 else "test")
            for i in range(20)]
    shards = tmp_path / "shards"
    result = invoke("prepare", "imagelist", write_list(tmp_path / "src", rows), "--shards", shards,
                    "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    result = invoke("finetune", "--method", "linear", "--model", "test_vit", "--recipe", "quick", "--data", shards,
                    "--out", run, *TINY, *SHORT, "--set", "data.val_split=null")
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "multi-label" and (info["method"], info["model"], info["views"]) == ("linear", "test_vit", "1x1")
    assert len(info["mean"]) == len(info["std"]) == 3 and info["state"] == "finished"
    sha = {name: hashlib.sha256(path.read_bytes()).hexdigest()
           for name, path in (("data", shards / "dataset.json"), ("backbone", run / "backbone.safetensors"))}
    assert info["data_fingerprint"] == sha["data"]
    assert info["backbone_file"] == "backbone.safetensors" and info["backbone_sha256"] == sha["backbone"]
    images = tmp_path / "src" / "pics"

    expected = _sigmoid_of_logits(run, images)
    from_run = _predicted_scores(run, images, tmp_path / "run.jsonl")
    assert sorted(from_run) == sorted(expected) and len(from_run) == 20
    for name, scores in from_run.items():
        assert scores == pytest.approx(expected[name], abs=2e-6)
        assert abs(sum(scores.values()) - 1.0) > 1e-3  # not a softmax

    export = tmp_path / "model.safetensors"
    result = invoke("export", "--run", run, "--full", "--out", export)
    assert result.exit_code == 0, result.output
    from adaptcli.deploy.header import ExportHeader

    assert ExportHeader.read(export).multi_label
    from_export = _predicted_scores(export, images, tmp_path / "export.jsonl")
    assert sorted(from_export) == sorted(expected)
    for name, scores in from_export.items():
        assert scores == pytest.approx(expected[name], abs=1e-5)

    older = json.loads((run / "run.json").read_text())  # as adaptcli wrote it before the task was recorded
    older = {k: older[k] for k in ("data", "dataset", "modality", "classes", "num_classes", "state", "epoch", "step")}
    (run / "run.json").write_text(json.dumps(older, indent=2) + "\n")
    for told_by in ("summary.json", "the data's manifest"):
        if told_by != "summary.json":
            (run / "summary.json").rename(tmp_path / "summary.json")
        again = _predicted_scores(run, images, tmp_path / f"older-{len(told_by)}.jsonl")
        for name, scores in again.items():
            assert scores == pytest.approx(from_run[name], abs=1e-6), told_by
