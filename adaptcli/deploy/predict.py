"""``adaptcli predict``: labels for raw images and videos, from a run or any of its exports.

A model source is opened into a :class:`Predictor`: its forward (logits), its classes, and the run's
configuration, whose evaluation transform every source applies the same way (the run folder, or any
export the format registry opens: :func:`adaptcli.deploy.formats.open_export`; each export carries the
run's configuration in its header). Files are cut by the eval stream's own transform
(:func:`adaptcli.data.stream.samples.eval_views`): images get the eval crop; videos ``eval.views`` clips x crops,
softmax averaged per video, as ``adaptcli eval`` does on shards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adaptcli.config import RunConfig, from_dict, parse_views
from adaptcli.errors import AdaptError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
VIDEO_SUFFIXES = {".webm", ".mp4", ".avi", ".mkv", ".mov"}
LIST_SUFFIXES = {".txt", ".lst"}


@dataclass
class Predictor:
    """A model ready to score normalised inputs, with what its inputs must look like."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    classes: list[str]
    config: RunConfig
    mean: tuple[float, ...]
    std: tuple[float, ...]
    modality: str
    source: str  # what was opened, for the summary line
    multi_label: bool = False


def _torch_forward(model: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    model = model.to(device).eval()

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(inputs.to(device)).float().cpu()
    return forward


def _from_meta(forward, meta: dict[str, Any], source: str) -> Predictor:
    if "config" not in meta:
        raise AdaptError(f"{source} carries no run configuration (exported by an older adaptcli); export the run again")
    config = from_dict(meta["config"] if isinstance(meta["config"], dict) else json.loads(meta["config"]))
    return Predictor(forward, [str(c) for c in meta["classes"]], config, tuple(meta["mean"]), tuple(meta["std"]),
                     str(meta.get("modality", "image")), source, meta.get("task") == "multi-label")


def open_predictor(source: Path, backbone: Path | None = None, device: str = "cpu") -> Predictor:
    """A run folder, or any export a format of :mod:`adaptcli.deploy.formats` reads (``backbone``: the
    weights an adapter-only export attaches to, or where a run's backbone file moved); a one-line error
    for anything else."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdaptError("--device cuda: torch sees no CUDA GPU; use --device cpu")
    source = Path(source)
    if source.is_dir() and (source / "run.json").is_file():
        from adaptcli.runs.build import is_video_model, normalisation
        from adaptcli.runs.folder import RunDir
        from adaptcli.runs.load import load_run_model

        loaded = load_run_model(RunDir(source), backbone=backbone)
        norm = normalisation(loaded.model)
        return Predictor(_torch_forward(loaded.model, dev), list(loaded.info.classes), loaded.config,
                         tuple(norm.mean), tuple(norm.std), "video" if is_video_model(loaded.model) else "image",
                         f"run {source}", loaded.info.multi_label)
    from adaptcli.deploy.formats import open_export

    opened = open_export(source, backbone, also="a run folder")
    model = opened.load()
    forward = _torch_forward(model, dev) if opened.runtime == "torch" else model
    return _from_meta(forward, opened.header, opened.source)


def input_files(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image and video files from files, folders (recursively, sorted) and list files (one path per line,
    relative to the list); with what was given but cannot be predicted, and why. A given path that does not
    exist is a one-line error (a listed one is skipped like an unreadable file)."""
    from adaptcli.files import read_text_bounded

    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            for line in read_text_bounded(path).splitlines():
                if line.strip():
                    entry = Path(line.strip())
                    found.append(entry if entry.is_absolute() else path.parent / entry)
        elif not path.exists():
            raise AdaptError(f"{path} does not exist; pass image or video files, folders of them or .txt lists "
                             "of paths")
        elif path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            found.append(path)
        else:
            problems.append((str(path), "not an image, a video, a folder or a list file"))
    return found, problems


def _spec(predictor: Predictor):  # -> adaptcli.data.stream.spec.StreamSpec
    """The eval stream's settings for the predictor's configuration and normalisation."""
    from adaptcli.data.stream.spec import StreamSpec

    config = predictor.config
    return StreamSpec.from_config(config.data, config.model.img_size, config.model.num_frames, predictor.mean,
                                  predictor.std)


def image_views(path: Path, predictor: Predictor) -> torch.Tensor:
    """1 x 3 x S x S: the eval crop of one image file (the eval stream's transform)."""
    from adaptcli.data.prepare.image_encode import encode_image_file
    from adaptcli.data.stream.samples import eval_views
    from adaptcli.data.stream.transforms import normalise

    _, raw, _ = encode_image_file(path)
    return normalise(eval_views([raw], _spec(predictor), video=False)[0], predictor.mean, predictor.std, video=False)


def video_views(path: Path, predictor: Predictor) -> torch.Tensor:
    """V x 3 x T x S x S: ``eval.views`` clips x crops of one video file, clip-major (the eval stream's transform)."""
    from adaptcli.data.stream.samples import eval_views
    from adaptcli.data.stream.transforms import normalise
    from adaptcli.data.prepare.video_decode import decode_to_arrays
    from adaptcli.files import regular_file

    regular_file(path)
    frames = decode_to_arrays(path)
    if not frames:
        raise ValueError("no frames decoded")
    views = eval_views(frames, _spec(predictor), video=True, views=parse_views(predictor.config.eval.views))
    return normalise(views, predictor.mean, predictor.std, video=True)


@dataclass
class Prediction:
    path: str
    scores: torch.Tensor  # per class: softmax (sigmoid for multi-label), averaged over views


def predict_files(predictor: Predictor, files: list[Path], batch_size: int = 16,
                  progress: Callable[[int], None] | None = None) -> Iterator[Prediction | tuple[str, str]]:
    """A :class:`Prediction` per readable file, ``(path, reason)`` for each one that cannot be read."""
    pending: list[tuple[Path, torch.Tensor]] = []

    def flush() -> Iterator[Prediction]:
        if not pending:
            return
        logits = predictor.forward(torch.cat([views for _, views in pending]))
        scores = torch.sigmoid(logits) if predictor.multi_label else torch.softmax(logits, dim=-1)
        start = 0
        for path, views in pending:
            yield Prediction(str(path), scores[start:start + len(views)].mean(dim=0))
            start += len(views)
        pending.clear()

    for path in files:
        video = path.suffix.lower() in VIDEO_SUFFIXES
        if video != (predictor.modality == "video"):
            yield str(path), f"{'a video' if video else 'an image'}, but the model takes {predictor.modality}s"
        else:
            try:
                views = video_views(path, predictor) if video else image_views(path, predictor)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is listed and skipped, never fatal
                yield str(path), f"unreadable: {type(exc).__name__}: {str(exc)[:120]}"
            else:
                pending.append((path, views))
                if sum(len(v) for _, v in pending) >= batch_size or video:
                    yield from flush()
        if progress is not None:
            progress(1)
    yield from flush()


def top_k(prediction: Prediction, classes: list[str], k: int) -> list[tuple[str, int, float]]:
    """(class, index, score) of the ``k`` best classes."""
    values, indices = prediction.scores.topk(min(k, len(classes)))
    return [(classes[i], int(i), float(v)) for v, i in zip(values, indices)]


__all__ = ["Prediction", "Predictor", "input_files", "open_predictor", "predict_files", "top_k"]
