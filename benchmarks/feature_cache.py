"""The attentive probe's training epoch from the feature cache on disk, in memory, and with no cache.

    PYTHONPATH=. python benchmarks/feature_cache.py            # vit_small_patch16_224, 224 px, 96 images
    PYTHONPATH=. python benchmarks/feature_cache.py --quick    # test_vit at 64 px (seconds)

Three real ``adaptcli finetune --method attentive_probe`` runs on the same prepared image shards (random
colour images, random-init backbone: the timing does not depend on the weights), one after the other:
``train.feature_cache=false`` (the backbone runs at every step), the cache in memory (the default), and
the cache on disk (``train.feature_cache_memory_gb=0``: a float32 file in the run folder, read back per
batch). Each epoch's training-loop seconds come from ``metrics.jsonl``; the median epoch of each run is
printed with its ratio to the in-memory one, side by side, and the time outside the epochs (the caching
pass, checkpoints) from ``summary.json``'s ``train_seconds``.

Those runs follow one another, so on a shared machine load drifts between them: the second part times
the same three epochs in this process, interleaved (A B C, C B A, ...; ``measure.time_interleaved``)
on ``--threads`` threads, on process CPU time (the work, not the scheduling) and wall time: one epoch
of the probe (HeadOnly, SGD) from adaptcli's :class:`~adaptcli.engine.features.FeatureCache` over the
same tokens in memory and in a disk file written by its ``DiskSink``, and one epoch with the backbone.

The cache file written here fits the page cache, so the disk rows measure the read path (memmap, copy of
a batch's rows), not the disk: a file larger than the free memory is read at the disk's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {"no cache": ["train.feature_cache=false"], "in memory": [], "on disk": ["train.feature_cache_memory_gb=0"]}


def prepare_shards(root: Path, images: int, size: int) -> Path:
    import numpy as np

    from adaptcli.data.synthetic import write_image_folder

    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 200, 40)}
    per_class = images // len(colours)
    splits = {"train": {name: [np.clip(np.array(rgb) + rng.integers(-40, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                               for _ in range(per_class)] for name, rgb in colours.items()}}
    write_image_folder(root / "src", splits)
    shards = root / "shards"
    run([sys.executable, "-m", "adaptcli", "prepare", "imagefolder", str(root / "src"), "--shards", str(shards),
         "--samples-per-shard", "32", "--no-progress"])
    return shards


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:5])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def finetune(args: argparse.Namespace, shards: Path, out: Path, extra: list[str]) -> list[str]:
    sets = [f"model.img_size={args.img_size}", f"train.epochs={args.epochs}", f"train.batch_size={args.batch}",
            "data.val_split=null", "data.workers=0", f"eval.batch_size={args.batch}", "method.depth=1", *extra]
    cmd = [sys.executable, "-m", "adaptcli", "finetune", "--method", "attentive_probe", "--recipe", "quick",
           "--model", args.model, "--data", str(shards), "--out", str(out)]
    for value in sets:
        cmd += ["--set", value]
    return cmd


def measure(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="adaptcli-cache-bench-") as tmp:
        root = Path(tmp)
        shards = prepare_shards(root, args.images, args.img_size)
        print("command: " + " ".join(finetune(args, Path("SHARDS"), Path("OUT"), [])[1:]), flush=True)
        for mode, extra in MODES.items():
            out = root / mode.replace(" ", "-")
            wall = time.perf_counter()
            stdout = run(finetune(args, shards, out, [f"{s}" for s in extra]))
            wall = time.perf_counter() - wall
            summary = json.loads((out / "summary.json").read_text())
            epochs = [json.loads(line)["seconds"] for line in (out / "metrics.jsonl").read_text().splitlines()
                      if json.loads(line).get("event") == "train"]
            said = next((line for line in stdout.splitlines() if line.startswith("feature cache:")), "")
            print(f"  {mode:9s} epochs (s): {[round(e, 3) for e in epochs]}", flush=True)
            found[mode] = {"epoch": statistics.median(epochs), "outside": summary["train_seconds"] - sum(epochs),
                           "wall": wall, "cached": summary["feature_cache"]}
            print(f"  {mode:9s} median epoch {found[mode]['epoch']:7.2f} s  outside epochs "
                  f"{found[mode]['outside']:6.2f} s  process {wall:6.1f} s  feature_cache={summary['feature_cache']}"
                  + (f"  ({said})" if said else ""), flush=True)
            assert not (out / "feature-cache").exists(), "the disk cache was left behind"
    return found


def interleaved(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Median (CPU, wall) seconds of one epoch per mode, timed in interleaved rounds in this process."""
    import torch
    from measure import time_interleaved

    from adaptcli.engine.feature_store import DiskSink
    from adaptcli.engine.features import FeatureCache, HeadOnly
    from adaptcli.methods.apply import apply_method
    from adaptcli.methods.registry import method_spec
    from adaptcli.models.build import create_backbone
    from adaptcli.models.config import ModelConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_backbone(ModelConfig(name=args.model, img_size=args.img_size, pretrained=False), 2)
    apply_method(model, "attentive_probe", method_spec("attentive_probe").options(depth=1))
    head = HeadOnly(model)
    images, labels = torch.randn(args.images, 3, args.img_size, args.img_size), torch.arange(args.images) % 2
    steps = args.images // args.batch
    captured: list[torch.Tensor] = []
    hook = head.entry().register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].float()))
    with torch.no_grad():
        for start in range(0, args.images, args.batch):
            model.eval()(images[start:start + args.batch])
    hook.remove()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    loss_of = torch.nn.functional.cross_entropy

    def cached_epoch(cache: FeatureCache) -> None:
        for batch in cache.epoch_batches(0):
            loss_of(head(batch.inputs), batch.labels).backward()
            optimizer.step()
            optimizer.zero_grad()

    def uncached_epoch() -> None:
        order = torch.randperm(args.images, generator=torch.Generator().manual_seed(0))
        for step in range(steps):
            index = order[step * args.batch:(step + 1) * args.batch]
            loss_of(model(images[index]), labels[index]).backward()
            optimizer.step()
            optimizer.zero_grad()

    with tempfile.TemporaryDirectory(prefix="adaptcli-cache-bench-") as tmp:
        sink = DiskSink(Path(tmp) / "feature-cache", rank=0, world=1)
        for part in captured:
            sink.add(part)
        on_disk = sink.finish()
        memory = FeatureCache(torch.cat(captured), labels, args.batch, steps, seed=0, rank=0)
        disk = FeatureCache(on_disk, labels, args.batch, steps, seed=0, rank=0)
        wall, cpu = time_interleaved({"no cache": uncached_epoch, "in memory": lambda: cached_epoch(memory),
                                      "on disk": lambda: cached_epoch(disk)}, rounds=args.rounds, warmup=1,
                                     alternate=True)
        disk.close()
    return {mode: (statistics.median(cpu[mode]), statistics.median(wall[mode])) for mode in cpu}


def interleaved_report(found: dict[str, tuple[float, float]]) -> str:
    cpu, wall = found["in memory"]
    rows = ["| feature cache | epoch CPU s | / in memory | epoch wall s | / in memory |", "|---|---:|---:|---:|---:|"]
    for mode, (c, w) in found.items():
        rows.append(f"| {mode} | {c:.3f} | {c / cpu:.2f}x | {w:.3f} | {w / wall:.2f}x |")
    return "\n".join(rows)


def report(found: dict[str, dict[str, float]]) -> str:
    memory = found["in memory"]["epoch"]
    rows = ["| feature cache | median epoch s | / in memory | outside epochs s (pass, checkpoints) |",
            "|---|---:|---:|---:|"]
    for mode, values in found.items():
        rows.append(f"| {mode} | {values['epoch']:.2f} | {values['epoch'] / memory:.2f}x | {values['outside']:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=96, help="training images (two classes)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the in-process epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the in-process epochs")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: runs,interleaved")
    parser.add_argument("--quick", action="store_true", help="test_vit at 64 px, 32 images, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.img_size, args.images, args.epochs, args.rounds = "test_vit", 64, 32, 2, 3
    skip = set(args.skip.split(","))
    if "runs" not in skip:
        print("1. three finetune runs, one after the other\n" + report(measure(args)), flush=True)
    if "interleaved" not in skip:
        print(f"2. one epoch of each, interleaved in this process ({args.threads} thread(s), median of "
              f"{args.rounds} rounds)\n" + interleaved_report(interleaved(args)))


if __name__ == "__main__":
    main()
