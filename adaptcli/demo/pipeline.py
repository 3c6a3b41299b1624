"""The demo's stages: data -> prepare -> image pre-training -> video adaptation -> eval/export -> report.

Every stage goes through the same functions the CLI commands call (``prepare_dataset``,
``resolve`` + ``finetune``, ``evaluate_run``), with fixed seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from adaptcli.demo import METHODS
from adaptcli.demo.datasets import DEFAULT_SIZES, QUICK_SIZES, Sizes
from adaptcli.output import Output, to_stderr, to_stdout
from adaptcli.runs.results import TrainSummary

IMAGE_MODEL = "vit_demo_patch8"
VIDEO_MODEL = "video_vit_demo_patch8"
STAGES = 6
#: The demo's runs are short: every method trains without dropout or drop-path.
NO_DROPOUT = {"adaptformer": {"dropout": 0.0}, "arc": {"dropout": 0.0}, "vpt_deep": {"dropout": 0.0},
              "adapter_plus": {"drop_path": 0.0}}
#: The probe's heads: 16 does not divide the demo backbone's width 96; 3 as the backbone's own.
DEMO_OPTIONS = {"attentive_probe": {"heads": 3}}
#: Rows that train a method with a training add-on: row -> (method, train settings). PACE with the official
#: VTAB-1k command's lambda and sigma (MaxwellYaoNi/PACE, Vision/README.md: --lbd 1 --sigma 1.2).
ADD_ONS = {"lora+pace": ("lora", {"pace_lambda": 1.0, "pace_sigma": 1.2})}


@dataclass
class DemoSettings:
    """Sizes, epochs and per-method learning rates (AdamW, no batch scaling) of one demo run."""

    quick: bool
    sizes: Sizes
    pretrain_epochs: int
    video_epochs: int
    seed: int = 0
    batch_size: int = 16
    lr: dict[str, float] = field(default_factory=lambda: {
        "linear": 1e-2, "attentive_probe": 1e-3, "vpt_deep": 1e-2, "adaptformer": 1e-2, "arc": 1e-2, "lora": 1e-2,
        "ssf": 1e-2, "adapter_plus": 1e-2, "full": 1e-3,
    })
    #: One torch thread: the demo's matrices are tiny, and two threads fighting other processes
    #: for 2 cores made a training step ~10x slower in our measurements.
    threads: int = 1
    pretrain_lr: float = 2e-3
    methods: tuple[str, ...] = METHODS

    @classmethod
    def default(cls) -> "DemoSettings":
        return cls(quick=False, sizes=DEFAULT_SIZES, pretrain_epochs=10, video_epochs=14)

    @classmethod
    def quick_run(cls) -> "DemoSettings":
        return cls(quick=True, sizes=QUICK_SIZES, pretrain_epochs=4, video_epochs=4)


def stage(index: int, text: str, echo: Callable[[str], None]) -> None:
    echo(f"\n[{index}/{STAGES}] {text}")


# --------------------------------------------------------------------------- configs


def pretrain_config(settings: DemoSettings):
    """``full`` on the image set: the stand-in for ImageNet pre-training."""
    from adaptcli.config import resolve

    return resolve({
        "model": {"name": IMAGE_MODEL, "img_size": 32},
        "data": {"augment": "resize_crop", "crop_pct": 0.875, "flip": True, "workers": 0,
                 "shuffle_buffer": 1024, "val_split": "validation", "test_split": "test"},
        "train": {"epochs": settings.pretrain_epochs, "batch_size": 64, "optimizer": "adamw",
                  "lr": settings.pretrain_lr, "lr_base_batch": None, "weight_decay": 0.05,
                  "warmup_epochs": 1, "clip_grad": 1.0, "seed": settings.seed, "keep_checkpoints": 1},
        "eval": {"batch_size": 128},
    }, "full")


def video_config(settings: DemoSettings, method: str, checkpoint: Path):
    """One adaptation run on the video set from the image-pretrained checkpoint (inflated on load)."""
    from adaptcli.config import resolve

    method, add_on = ADD_ONS.get(method, (method, {}))
    return resolve({
        "model": {"name": VIDEO_MODEL, "img_size": 32, "num_frames": settings.sizes.frames,
                  "checkpoint": str(checkpoint)},
        "data": {"sampling": "segment", "augment": "resize", "flip": False, "workers": 0,
                 "shuffle_buffer": 512, "val_split": "validation", "test_split": "test"},
        "train": {"epochs": settings.video_epochs, "batch_size": settings.batch_size, "optimizer": "adamw",
                  "lr": settings.lr[method], "lr_base_batch": None, "weight_decay": 0.0,
                  "warmup_epochs": 1, "clip_grad": 1.0, "seed": settings.seed, "keep_checkpoints": 1, **add_on},
        "eval": {"views": "1x1", "batch_size": 64},
        "method": {**NO_DROPOUT.get(method, {}), **DEMO_OPTIONS.get(method, {})},
    }, method)


# --------------------------------------------------------------------------- stages


def write_data(out: Path, settings: DemoSettings) -> tuple[Path, Path]:
    from adaptcli.demo.datasets import write_datasets

    return write_datasets(out / "data", settings.sizes, settings.seed)


def prepare_data(image_root: Path, video_root: Path, out: Path,
                 echo: Callable[[str], None] = to_stdout, bars: bool = True) -> tuple[Path, Path]:
    from adaptcli.data.prepare.prepare import prepare_dataset

    image_shards, video_shards = out / "shards" / "images", out / "shards" / "ssv2"
    # Small shards: the image folder is listed class by class, and training draws shards at random.
    for dataset, root, shards in (("imagefolder", image_root, image_shards), ("ssv2", video_root, video_shards)):
        prepare_dataset(dataset, root, shards, workers=0, samples_per_shard=32, overwrite=True,
                        echo=echo, warn=to_stderr, progress=bars)
    return image_shards, video_shards


def train_run(config: Any, data: Path, run: Path, echo: Callable[[str], None] = to_stdout,
              bars: bool = True) -> TrainSummary:
    from adaptcli.engine.finetune import finetune

    return finetune(config, data, run, overwrite=True, output=Output(echo=echo, warn=to_stderr, bars=bars))


def merge_check(run: Path, out: Path) -> dict[str, Any]:
    """Export the run merged and report max |logits difference| against the adapted model."""
    from adaptcli.deploy import export_run

    return export_run(run, out, "merge", overwrite=True).to_dict()  # the demo owns its output folder


def run_demo(out: Path, settings: DemoSettings, echo: Callable[[str], None] = to_stdout,
             bars: bool = True) -> dict[str, Any]:
    """Run all six stages into ``out`` (``bars``: draw progress bars); returns the results dict written as
    ``results.json``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _run_stages(Path(out), settings, echo, bars)
    finally:
        torch.set_num_threads(threads)


def _run_stages(out: Path, settings: DemoSettings, echo: Callable[[str], None], bars: bool) -> dict[str, Any]:
    from adaptcli.demo.report import write_report
    from adaptcli.engine.evaluate import evaluate_run

    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    stage(1, "writing synthetic data: shape images (image folder) and motion clips (SSv2 layout, VP9 webm)", echo)
    t = time.time()
    image_root, video_root = write_data(out, settings)
    timings["data"] = time.time() - t
    echo(f"images in {image_root}, clips in {video_root} ({timings['data']:.1f} s)")

    stage(2, "prepare: both datasets into shards (the code 'adaptcli prepare' runs)", echo)
    t = time.time()
    image_shards, video_shards = prepare_data(image_root, video_root, out, echo, bars)
    timings["prepare"] = time.time() - t

    stage(3, f"pre-training {IMAGE_MODEL} on the image set with 'full' (stands in for ImageNet)", echo)
    pre_run = out / "runs" / "pretrain-image"
    pre_summary = train_run(pretrain_config(settings), image_shards, pre_run, echo, bars)
    pre_eval = evaluate_run(pre_run, split="test", output=Output(bars=bars))
    timings["pretrain"] = pre_summary.train_seconds
    echo(f"image pre-training: test top-1 {pre_eval.top1:.2f} (validation best {pre_summary.best_val:.2f})")
    checkpoint = pre_run / "best.safetensors"

    rows: list[dict[str, Any]] = []
    for n, method in enumerate(settings.methods, 1):
        stage(4, f"adapting {VIDEO_MODEL} (image weights inflated) to the motion task: {method} "
                 f"({n}/{len(settings.methods)})", echo)
        run = out / "runs" / f"video-{method}"
        summary = train_run(video_config(settings, method, checkpoint), video_shards, run, echo, bars)
        rows.append({"method": method, "run": str(run), "summary": summary})

    stage(5, "evaluating every run on the held-out test split; exporting arc merged", echo)
    for row in rows:
        metrics = evaluate_run(Path(row["run"]), split="test", output=Output(bars=bars))
        row["test"] = metrics
    merge = None
    if "arc" in settings.methods:
        merge = merge_check(out / "runs" / "video-arc", out / "export" / "arc-merged.safetensors")
        echo(f"arc merged into the plain backbone: {merge['path']} ({merge['bytes']:,} bytes), "
             f"max |logit difference| {merge['max_abs_diff']:.2e}")

    stage(6, "report", echo)
    results = write_report(out, settings, rows, pre_summary, pre_eval, merge, timings, time.time() - start, echo)
    return results
