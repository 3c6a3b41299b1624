"""Clips per second of the training stream from shards vs decoding every clip from its video file.

Generates realistic clips (``adaptcli.data.synthetic.natural_clip``: textured scene, camera pan and
zoom, a moving object, sensor noise) with a dataset's statistics, prepares them into shards with
adaptcli's own ``prepare`` code, then measures in one run, with the same sampling (segment, T frames)
and transform (random resized crop to 224, normalisation):

  shards   the adaptcli training stream (``train_loader``) reading the shards
  video    decoding each clip from its video file with PyAV every time (the reference projects' way):
           every frame decoded and converted to RGB, then T sampled
  video*   the same, but converting only the T sampled frames to RGB (a leaner baseline)
  ceiling  decoding just the T sampled JPEG frames from memory with the same transform

Profiles: ``ssv2`` 427x240 VP9 webm at 12 fps in the SSv2 layout; ``hmdb51`` 320x240 MPEG-4 AVI at
30 fps in the HMDB51 layout. Durations are drawn from 2-6 s (triangular, mode 3.2 s: mean 3.7 s,
about 45 frames at 12 fps).

Then (``benchmarks/feed.py``): the epoch-boundary gap over a mean step with and without the next
epoch's loader started early, the CPU cost per frame of the JPEG decode candidates, the cost of 720p
frames stored as they are against ``prepare --short-side 320``, and the GPU row. ``augment``: the CPU
cost per clip of VideoMAE's augmentations (timm RandAugment per clip in the workers; random erasing,
mixup and cutmix on the batch in the training process) against the plain training decode.

Usage: python benchmarks/loader.py [--profile ssv2] [--clips 48] [--frames 16] [--workers 0 2] [--quick]
       [--sections streams gap decode short-side augment]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from measure import throughput

from adaptcli.data.stream.batch import Collate
from adaptcli.data.stream.samples import SampleDecoder, frame_fields
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.train import train_loader
from adaptcli.data.stream.sampling import segment_indices
from adaptcli.data.synthetic import natural_clip, write_ssv2_layout, write_video
from adaptcli.data.stream.transforms import render, train_box

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SECTIONS = ("streams", "gap", "decode", "short-side", "augment")
MPEG4 = {"b": "800k"}  # XviD-like bitrate for 320x240 at 30 fps


@dataclass(frozen=True)
class Profile:
    """What the generated clips look like and how they are stored."""

    width: int
    height: int
    fps: int
    container: str  # file extension, also the column name of the decode-from-video paths


PROFILES = {"ssv2": Profile(427, 240, 12, "webm"), "hmdb51": Profile(320, 240, 30, "avi")}
CLASSES = ["brush_hair", "cartwheel", "catch", "chew"]


def durations(count: int, seed: int) -> list[float]:
    """Clip lengths in seconds: triangular on 2-6 s with mode 3.2 s (mean 3.73 s)."""
    rng = random.Random(seed)
    return [rng.triangular(2.0, 6.0, 3.2) for _ in range(count)]


def build(root: Path, name: str, clips: int, scale: float = 1.0, seed: int = 0) -> list[Path]:
    """Write ``clips`` generated clips in the dataset's own layout; return the video paths."""
    p = PROFILES[name]
    width, height = int(p.width * scale), int(p.height * scale)
    lengths = [max(2, round(d * p.fps)) for d in durations(clips, seed)]
    if name == "ssv2":
        items = [(str(10000 + i), f"Moving [something] {CLASSES[i % 4]}", ["box"],
                  natural_clip(n, height, width, seed=i)) for i, n in enumerate(lengths)]
        write_ssv2_layout(root, items, {"train": [c[0] for c in items]}, fps=p.fps)
        return [root / "20bn-something-something-v2" / f"{c[0]}.webm" for c in items]
    paths, lines = [], {c: [] for c in CLASSES}
    for i, n in enumerate(lengths):
        cls = CLASSES[i % 4]
        clip = f"{cls}_clip{i}_u_cm_np1_fr_med_{i}.avi"
        paths.append(write_video(root / "videos" / cls / clip, natural_clip(n, height, width, seed=i),
                                 fps=p.fps, codec="mpeg4", options=MPEG4))
        lines[cls].append(f"{clip} 1")
    splits = root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    for cls, rows in lines.items():
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(rows) + "\n")
    return paths


def _cpu_ms(run, repeats: int = 1) -> float:
    """Milliseconds of this process's CPU time per call of ``run`` (immune to other tenants)."""
    start = time.process_time()
    for _ in range(repeats):
        run()
    return (time.process_time() - start) / repeats * 1e3


def unit_costs(paths: list[Path], samples: list[dict], spec: StreamSpec) -> dict[str, float]:
    """CPU milliseconds of each piece of work, in this process: video decode and RGB conversion per
    frame, JPEG decode, crop-resize from a decoded frame, decode + crop-resize of a JPEG, normalise
    per clip of ``spec.num_frames`` frames."""
    import av
    from PIL import Image

    from adaptcli.data.stream.transforms import normalise, open_image

    frames, decode, rgb = 0, 0.0, 0.0
    arrays = []
    for path in paths:
        with av.open(str(path)) as container:
            start = time.process_time()
            decoded = list(container.decode(video=0))
            decode += time.process_time() - start
        start = time.process_time()
        converted = [f.to_ndarray(format="rgb24") for f in decoded]
        rgb += time.process_time() - start
        frames += len(decoded)
        arrays.append(converted[len(converted) // 2])
    rng = random.Random(0)
    jpegs = [frame_fields(s)[len(frame_fields(s)) // 2] for s in samples]
    height, width = arrays[0].shape[:2]
    boxes = [train_box("random_resized_crop", width, height, spec.img_size, spec.crop_scale, spec.crop_pct, rng)
             for _ in jpegs]
    clip = np.zeros((8, spec.num_frames, spec.img_size, spec.img_size, 3), np.uint8)
    n = len(jpegs)
    return {
        "video decode": decode / frames * 1e3,
        "rgb": rgb / frames * 1e3,
        "jpeg decode": _cpu_ms(lambda: [open_image(j).load() for j in jpegs]) / n,
        "render array": _cpu_ms(lambda: [render(Image.fromarray(a), b, spec.img_size)
                                         for a, b in zip(arrays, boxes)]) / n,
        "render jpeg": _cpu_ms(lambda: [render(open_image(j), b, spec.img_size) for j, b in zip(jpegs, boxes)]) / n,
        "normalise": _cpu_ms(lambda: normalise(clip, MEAN, STD, True), 5) / 8,
    }


class VideoClips:
    """Map-style dataset: decode the video file with PyAV on every access (the reference path)."""

    def __init__(self, paths: list[str], spec: StreamSpec, lean: bool, seed: int = 0) -> None:
        self.paths, self.spec, self.lean, self.seed = paths, spec, lean, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        import av
        from PIL import Image

        rng = random.Random(self.seed * 100003 + index)
        with av.open(self.paths[index]) as container:
            decoded = list(container.decode(video=0))
            if not self.lean:
                decoded = [f.to_ndarray(format="rgb24") for f in decoded]
        idx = segment_indices(len(decoded), self.spec.num_frames, True, rng)
        pick = [decoded[i] if not self.lean else decoded[i].to_ndarray(format="rgb24") for i in idx]
        h, w = pick[0].shape[:2]
        s = self.spec
        box = train_box("random_resized_crop", w, h, s.img_size, s.crop_scale, s.crop_pct, rng)
        return np.stack([render(Image.fromarray(a), box, s.img_size) for a in pick]), 0, str(index)


class JpegCeiling:
    """Map-style dataset over in-memory samples: decode only the sampled JPEGs, same transform."""

    def __init__(self, samples: list[dict], spec: StreamSpec) -> None:
        self.samples, self.decoder = samples, SampleDecoder(spec, "video", train=True, flip=False)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.decoder(self.samples[index], random.Random(index))


def map_loader(dataset, batch: int, workers: int, epochs: int):
    import torch.utils.data

    class Repeat(torch.utils.data.Dataset):
        def __len__(self):
            return len(dataset) * epochs

        def __getitem__(self, i):
            return dataset[i % len(dataset)]

    return torch.utils.data.DataLoader(Repeat(), batch_size=batch, shuffle=True, num_workers=workers,
                                       collate_fn=Collate(MEAN, STD, video=True), drop_last=True,
                                       generator=torch.Generator().manual_seed(0))


def _cpu_with_children() -> float:
    """CPU seconds of this process plus its finished (joined) child processes."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rates(make) -> tuple[float, float]:
    """(clips per wall second after the first batch, clips per CPU second of this process and its
    loader workers over the whole run). Workers are joined before the CPU clock is read: a worker's
    time only counts once it has exited."""
    gc.collect()
    cpu = _cpu_with_children()
    iterator = iter(make())
    first = len(next(iterator).keys)
    count, start = 0, time.perf_counter()
    for batch in iterator:
        count += len(batch.keys)
    wall = time.perf_counter() - start
    del iterator
    gc.collect()  # shuts the workers down (DataLoader iterators join them when collected)
    return count / wall, (first + count) / (_cpu_with_children() - cpu)


def header(video: str) -> str:
    return (f"{'workers':>8} {'shards':>9} {video:>9} {video + '*':>9} {'ceiling':>9} "
            f"{'shards/' + video:>12} {'shards/' + video + '*':>13} {'shards/ceiling':>15}")


def row(label: str, r: dict[str, float]) -> str:
    return (f"{label:>8} {r['shards']:>9.1f} {r['video']:>9.1f} {r['lean']:>9.1f} {r['ceiling']:>9.1f} "
            f"{r['shards'] / r['video']:>11.2f}x {r['shards'] / r['lean']:>12.2f}x "
            f"{r['shards'] / r['ceiling']:>14.0%}")


def verdicts(results: dict[str, dict[str, float]], video: str) -> list[str]:
    """One line per goal: met only if it holds on every row (every worker count)."""
    lines = []
    for goal, key, target in ((f"shards >= 5x {video}", "video", 5.0), ("shards >= 0.9x ceiling", "ceiling", 0.9)):
        ratios = {label: r["shards"] / r[key] for label, r in results.items()}
        met = all(v >= target for v in ratios.values())
        values = ", ".join(f"{v:.2f}x at workers={label.split()[0]}" for label, v in ratios.items())
        lines.append(f"goal {goal}: {'met' if met else 'MISSED'} ({values})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ssv2")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8, help="passes over the clips per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per path (best is kept)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--root", type=Path, default=None, help="keep the data here (default: temp)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="what to measure (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8 half-size clips, 1 pass, 1 round, crop 112 (numbers mean little)")
    args = parser.parse_args()
    scale = 1.0
    if args.quick:
        args.clips, args.epochs, args.rounds, args.size, args.batch, scale = 8, 1, 1, 112, 4, 0.5

    import torch

    from adaptcli.data.manifest import read_manifest
    from adaptcli.data.prepare.prepare import prepare_dataset
    from adaptcli.data.stream.tar_reader import iter_samples

    profile = PROFILES[args.profile]
    tmp = Path(tempfile.mkdtemp(prefix="adaptcli-bench-")) if args.root is None else args.root
    src, out = tmp / args.profile, tmp / f"{args.profile}-shards"
    t = time.perf_counter()
    paths = build(src, args.profile, args.clips, scale)
    built = time.perf_counter() - t
    t = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    extra = {"split_dir": src / "splits"} if args.profile == "hmdb51" else {}
    (result,) = prepare_dataset(args.profile, src / "videos" if args.profile == "hmdb51" else src, out,
                                splits="train", workers=None, samples_per_shard=16,
                                progress=False, **extra)
    prepared = time.perf_counter() - t
    manifest = read_manifest(out)
    samples = [s for n in manifest.splits["train"].shards for s in iter_samples(out / n)]
    assert all(frame_fields(s) for s in samples) and len(samples) == args.clips
    counts = [len(frame_fields(s)) for s in samples]
    video_bytes = sum(p.stat().st_size for p in paths)
    jpeg_bytes = sum(len(f) for s in samples for f in frame_fields(s))
    width, height = int(profile.width * scale), int(profile.height * scale)
    print(f"data: {args.profile}, {args.clips} clips {width}x{height} {profile.container} {profile.fps} fps, "
          f"frames {min(counts)}-{max(counts)} (mean {statistics.mean(counts):.1f}); "
          f"built in {built:.1f} s, prepared in {prepared:.1f} s")
    print(f"{profile.container}: {video_bytes / 1e6:.2f} MB, {video_bytes / sum(counts) / 1e3:.2f} kB per frame; "
          f"shards: {result.bytes / 1e6:.1f} MB, JPEG q90 {jpeg_bytes / sum(counts) / 1e3:.2f} kB per frame")
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, threads {torch.get_num_threads()}")

    spec = StreamSpec(img_size=args.size, num_frames=args.frames, mean=MEAN, std=STD, sampling="segment",
                      augment="random_resized_crop", flip=False, shuffle_buffer=64)
    steps = args.clips * args.epochs // args.batch

    if "streams" in args.sections:
        measure_streams(args, profile, out, paths, samples, counts, spec, steps)
    feed_sections(args, tmp, out, samples, spec)
    if args.root is None:
        shutil.rmtree(tmp, ignore_errors=True)


def feed_sections(args, tmp: Path, out: Path, samples: list[dict], spec: StreamSpec) -> None:
    """The sections of ``benchmarks/feed.py``, and the GPU row."""
    from feed import NO_GPU, print_decoders, print_epoch_gap, print_short_side, print_worker_costs

    if "gap" in args.sections:
        print_epoch_gap(out, spec, args.batch, args.workers)
    if "decode" in args.sections:
        print_decoders(samples, spec)
        print_worker_costs(out, spec, args.batch)
    if "short-side" in args.sections and not args.quick:
        print_short_side(tmp / "short-side")
    if "augment" in args.sections:
        print_augment_costs(samples, spec, args.batch)
    print(f"\nGPU: real finetune samples/s against train_step.py --device cuda: {NO_GPU}")


def print_augment_costs(samples: list[dict], spec: StreamSpec, batch: int) -> None:
    """CPU ms per clip: the worker's decode without and with RandAugment (VideoMAE's rand-m7-n4-mstd0.5-inc1),
    and the training process's erasing + mixup/cutmix on a batch (VideoMAE's 0.25, 0.8, 1.0)."""
    import dataclasses

    import torch

    from adaptcli.config import TrainConfig
    from adaptcli.engine.batch_augment import BatchAugment

    plain = SampleDecoder(spec, "video", train=True, flip=True)
    augmented = SampleDecoder(dataclasses.replace(spec, rand_augment="rand-m7-n4-mstd0.5-inc1"), "video", train=True,
                              flip=True)
    rng = random.Random(0)
    base = _cpu_ms(lambda: [plain(s, rng) for s in samples]) / len(samples)
    with_ra = _cpu_ms(lambda: [augmented(s, rng) for s in samples]) / len(samples)
    augment = BatchAugment(TrainConfig(mixup=0.8, cutmix=1.0, random_erasing=0.25, label_smoothing=0.1,
                                       batch_size=batch), 174, "cpu")
    clips = torch.randn(batch, 3, spec.num_frames, spec.img_size, spec.img_size)
    labels = torch.arange(batch) % 174
    mixing = _cpu_ms(lambda: augment(clips.clone(), labels), 5) / batch
    copy = _cpu_ms(lambda: clips.clone(), 5) / batch
    print(f"\naugmentation, CPU ms per {spec.num_frames}-frame clip at {spec.img_size} px (this process):")
    print(f"  worker decode {base:.2f}; with RandAugment {with_ra:.2f} ({with_ra / base:.2f}x)")
    print(f"  batch erasing + mixup/cutmix {max(mixing - copy, 0.0):.2f} (training process, CPU tensors; "
          f"{max(mixing - copy, 0.0) / base:.2f}x of the worker decode)")


def measure_streams(args, profile: Profile, out: Path, paths: list[Path], samples: list[dict], counts: list[int],
                    spec: StreamSpec, steps: int) -> None:
    """Shards against decoding the videos, and the unit costs behind them."""
    files = [str(p) for p in paths]
    # warm-up: page cache, lazy imports and allocator growth would otherwise bias the first path
    throughput(map_loader(JpegCeiling(samples, spec), args.batch, 0, 1))
    cost = unit_costs(paths, samples, spec)
    frames, t_frames = statistics.mean(counts), args.frames
    video_clip = frames * (cost["video decode"] + cost["rgb"]) + t_frames * cost["render array"] + cost["normalise"]
    shard_clip = t_frames * cost["render jpeg"] + cost["normalise"]
    print(f"\ncost in CPU ms (one process): {profile.container} decode {cost['video decode']:.2f} + RGB "
          f"{cost['rgb']:.2f} per frame; JPEG decode {cost['jpeg decode']:.2f}, decode + crop-resize "
          f"{cost['render jpeg']:.2f} per frame; crop-resize of a decoded frame {cost['render array']:.2f}; "
          f"normalise {cost['normalise']:.2f} per clip")
    print(f"per clip: {profile.container} path {video_clip:.1f} ms ({frames:.1f} frames decoded), shard path "
          f"{shard_clip:.1f} ms ({t_frames} JPEGs) before stream overhead: "
          f"expected ratio {video_clip / shard_clip:.2f}x")

    print(f"\nsegment sampling T={args.frames}, random resized crop {args.size}, batch {args.batch}, "
          f"{steps * args.batch} clips per measurement, best of {args.rounds} (clips/s, higher is better);")
    print("wall: after the first batch; cpu: clips per CPU-second of the process and its workers, whole run")
    print(header(profile.container))
    wall_rows, cpu_rows = {}, {}
    for workers in args.workers:
        best = {"shards": 0.0, "video": 0.0, "lean": 0.0, "ceiling": 0.0}
        best_cpu = dict(best)
        for _ in range(args.rounds):  # interleaved rounds, best of each: less noise, no order bias
            def shards(workers: int = workers):
                loader, _ = train_loader(ShardFolder.read(out), "train", spec, args.batch, workers=workers, seed=0)
                loader.steps = steps + 1
                return loader

            runs = {
                "shards": shards,
                "video": lambda w=workers: map_loader(VideoClips(files, spec, lean=False), args.batch, w, args.epochs),
                "lean": lambda w=workers: map_loader(VideoClips(files, spec, lean=True), args.batch, w, args.epochs),
                "ceiling": lambda w=workers: map_loader(JpegCeiling(samples, spec), args.batch, w, args.epochs),
            }
            for name, make in runs.items():
                wall, cpu = rates(make)
                best[name], best_cpu[name] = max(best[name], wall), max(best_cpu[name], cpu)
        wall_rows[f"{workers}"], cpu_rows[f"{workers} (cpu)"] = best, best_cpu
        print(row(f"{workers}", best), flush=True)
        print(row(f"{workers} (cpu)", best_cpu), flush=True)
    print()
    for clock, rows in (("wall clock", wall_rows), ("CPU time", cpu_rows)):
        for line in verdicts(rows, profile.container):
            print(f"{line} [{clock}]")

if __name__ == "__main__":
    main()
