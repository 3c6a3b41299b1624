"""Clips per second of the training stream from shards vs decoding every clip from its webm.

Builds a synthetic SSv2-like set (VP9 webm, 240p, 12 fps, 2-4 s), prepares it into shards, then
measures in one run, with the same sampling (segment, T frames) and transform (random resized
crop to 224, normalisation):

  shards   the adaptcli training stream (``train_loader``) reading the shards
  webm     decoding each clip from its webm with PyAV every time (the reference projects' way):
           every frame decoded and converted to RGB, then T sampled
  webm*    the same, but converting only the T sampled frames to RGB (a leaner baseline)
  ceiling  decoding just the T sampled JPEG frames from memory with the same transform

Usage: python benchmarks/loader.py [--clips 48] [--workers 0 2] [--frames 8] [--size 224]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import throughput

from adaptcli.data.loader import Collate, SampleDecoder, StreamSpec, frame_fields, train_loader
from adaptcli.data.sampling import segment_indices
from adaptcli.data.synthetic import moving_square, write_ssv2_layout
from adaptcli.data.transforms import render, train_box

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build(root: Path, clips: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    items = []
    for i in range(clips):
        direction = ["left", "right", "up", "down"][i % 4]
        frames = moving_square(direction, rng.randint(24, 48), 240, 320, seed=i)  # type: ignore[arg-type]
        items.append((str(10000 + i), f"Moving [something] {direction}", ["box"], frames))
    write_ssv2_layout(root, items, {"train": [c[0] for c in items]})


class WebmClips:
    """Map-style dataset: decode the webm with PyAV on every access (the reference path)."""

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


def _row(label: str, r: dict[str, float]) -> None:
    print(f"{label:>8} {r['shards']:>9.1f} {r['webm']:>9.1f} {r['lean']:>9.1f} {r['ceiling']:>9.1f} "
          f"{r['shards'] / r['webm']:>11.2f}x {r['shards'] / r['lean']:>12.2f}x "
          f"{r['shards'] / r['ceiling']:>14.0%}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4, help="passes over the clips per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per path (best is kept)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--root", type=Path, default=None, help="keep the data here (default: temp)")
    args = parser.parse_args()

    import torch

    from adaptcli.data.manifest import read_manifest
    from adaptcli.data.prepare import prepare_dataset
    from adaptcli.data.tar_reader import iter_samples

    tmp = Path(tempfile.mkdtemp(prefix="adaptcli-bench-")) if args.root is None else args.root
    src, out = tmp / "ssv2", tmp / "shards"
    t = time.perf_counter()
    if not (src / "labels" / "train.json").exists():
        build(src, args.clips)
    built = time.perf_counter() - t
    t = time.perf_counter()
    (result,) = prepare_dataset("ssv2", src, out, splits="train", workers=os.cpu_count() or 1,
                                samples_per_shard=16, progress=False)
    prepared = time.perf_counter() - t
    manifest = read_manifest(out)
    webm_bytes = sum(p.stat().st_size for p in (src / "20bn-something-something-v2").iterdir())
    print(f"data: {args.clips} clips 320x240 VP9 12 fps, frames {manifest.splits['train'].frames}; "
          f"webm {webm_bytes / 1e6:.1f} MB, shards {result.bytes / 1e6:.1f} MB; "
          f"built in {built:.1f} s, prepared in {prepared:.1f} s")
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, threads {torch.get_num_threads()}")

    spec = StreamSpec(img_size=args.size, num_frames=args.frames, mean=MEAN, std=STD, sampling="segment",
                      augment="random_resized_crop", flip=False, shuffle_buffer=64)
    paths = sorted(str(p) for p in (src / "20bn-something-something-v2").glob("*.webm"))
    samples = [s for n in manifest.splits["train"].shards for s in iter_samples(out / n)]
    assert all(frame_fields(s) for s in samples)
    steps = args.clips * args.epochs // args.batch

    # warm-up: page cache, lazy imports and allocator growth would otherwise bias the first path
    throughput(map_loader(JpegCeiling(samples, spec), args.batch, 0, 1))
    print(f"\nsegment sampling T={args.frames}, random resized crop {args.size}, batch {args.batch}, "
          f"~{steps * args.batch} clips per measurement, best of {args.rounds} (clips/s, higher is better)")
    print(f"{'workers':>8} {'shards':>9} {'webm':>9} {'webm*':>9} {'ceiling':>9} "
          f"{'shards/webm':>12} {'shards/webm*':>13} {'shards/ceiling':>15}")
    cpu_rows = []
    for workers in args.workers:
        best = {"shards": 0.0, "webm": 0.0, "lean": 0.0, "ceiling": 0.0}
        best_cpu = dict(best)
        for _ in range(args.rounds):  # interleaved rounds, best of each: less noise, no order bias
            loader, _ = train_loader(out, "train", spec, args.batch, workers=workers, seed=0)
            loader.steps = steps + 1
            runs = {
                "shards": loader,
                "webm": map_loader(WebmClips(paths, spec, lean=False), args.batch, workers, args.epochs),
                "lean": map_loader(WebmClips(paths, spec, lean=True), args.batch, workers, args.epochs),
                "ceiling": map_loader(JpegCeiling(samples, spec), args.batch, workers, args.epochs),
            }
            for name, iterable in runs.items():
                wall, cpu = throughput(iterable)
                best[name], best_cpu[name] = max(best[name], wall), max(best_cpu[name], cpu)
        _row(f"{workers}", best)
        if workers == 0:
            cpu_rows.append(best_cpu)
    for row in cpu_rows:  # one process does all the work: CPU time is immune to other tenants
        print("\nworkers=0 measured in CPU time of the process (clips per CPU-second):")
        _row("0 (cpu)", row)
    if args.root is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
