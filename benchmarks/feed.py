"""What keeps a GPU fed, measured side by side (called by ``benchmarks/loader.py``, sections ``gap``,
``decode``, ``short-side``, ``gpu``):

  gap         the wait between the last step of an epoch and the first batch of the next, against a mean
              step, with each epoch's loader started when the epoch begins (before) and with
              :class:`adaptcli.engine.batches.EpochStreams` starting it ahead (now). The device step is a
              sleep: the CPU is free while a GPU computes, as in real training.
  decode      CPU milliseconds per frame of the training crop (random resized crop of a JPEG frame) by
              the stream's path (PIL decode + box resize) and by the candidates, with their pixel
              differences from it.
  short-side  CPU milliseconds per training clip decoded from 1280x720 frames stored as they are,
              against the same clips prepared with ``--short-side 320``.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from adaptcli.data.stream.samples import SampleDecoder, frame_fields
from adaptcli.data.stream.shards import ShardFolder
from adaptcli.data.stream.spec import StreamSpec
from adaptcli.data.stream.train import train_loader
from adaptcli.data.stream.transforms import open_image, render, train_box
from adaptcli.engine.batches import EpochStreams

NO_GPU = "No GPU was available this session (2026-12-05): no GPU row was measured"


# --------------------------------------------------------------------------- epoch boundary


def _boundary_times(open_epoch: Callable[[int], Iterator[Any]], streams: EpochStreams | None, steps: int,
                    epochs: int, step_seconds: float) -> tuple[list[float], list[float]]:
    """(gaps at epoch starts after the first, mean-step samples): a training loop over ``epochs``."""
    gaps, steps_seen = [], []
    last_end = None
    for epoch in range(epochs):
        batches = streams.batches(epoch) if streams else open_epoch(epoch)
        for index in range(steps):
            before = time.perf_counter()
            next(batches)
            got = time.perf_counter()
            if index == 0 and last_end is not None:
                gaps.append(got - last_end)
            elif index > 0:
                steps_seen.append(got - before + step_seconds)
            if streams and index + 1 >= steps - streams.lead and epoch + 1 < epochs:
                streams.prefetch(epoch + 1)
            time.sleep(step_seconds)  # the device computing the step
            last_end = time.perf_counter()
        del batches
    return gaps, steps_seen


def epoch_gap(shards: Path, spec: StreamSpec, batch: int, workers: int, epochs: int = 3,
              step_seconds: float = 0.2) -> dict[str, float]:
    """Mean epoch-boundary gap / mean step, before (loader opened at epoch start) and now (prefetched)."""
    stream, steps = train_loader(ShardFolder.read(shards), "train", spec, batch, workers=workers, seed=0)
    out = {"steps": float(steps)}
    for name, streams in (("before", None), ("now", EpochStreams(stream.start, workers))):
        gaps, seen = _boundary_times(stream.start, streams, steps, epochs, step_seconds)
        out[f"{name}_gap"], out[f"{name}_step"] = statistics.mean(gaps), statistics.mean(seen)
    return out


def print_epoch_gap(shards: Path, spec: StreamSpec, batch: int, workers: list[int]) -> None:
    print("\nepoch boundary: gap from the last step of an epoch to the first batch of the next, over a mean "
          "step (device step = 0.2 s sleep; goal <= 1.5)")
    print(f"{'workers':>8} {'steps':>6} {'before gap':>11} {'ratio':>7} {'now gap':>9} {'ratio':>7}")
    for count in [w for w in workers if w > 0]:
        r = epoch_gap(shards, spec, batch, count)
        print(f"{count:>8} {int(r['steps']):>6} {r['before_gap']:>10.3f}s {r['before_gap'] / r['before_step']:>7.2f}"
              f" {r['now_gap']:>8.3f}s {r['now_gap'] / r['now_step']:>7.2f}", flush=True)


# --------------------------------------------------------------------------- decoders


def _tv_decode(data: bytes):  # -> torch.Tensor, 3 x H x W uint8
    import torch
    from torchvision.io import decode_jpeg

    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))


def _tv_pil(data: bytes, box, size: int) -> np.ndarray:
    """torchvision's libjpeg-turbo decode, then PIL's box resize (the stream's resize)."""
    from PIL import Image

    frame = _tv_decode(data).permute(1, 2, 0).numpy()
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR, box=box))


def _tv_torch(data: bytes, box, size: int) -> np.ndarray:
    """torchvision decode, crop to the (integer) box, then torch's antialiased uint8 bilinear resize."""
    import torch

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    crop = _tv_decode(data)[:, y0:y1, x0:x1].unsqueeze(0).contiguous(memory_format=torch.channels_last)
    out = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)
    return out[0].permute(1, 2, 0).numpy()


def _batch_path(data: bytes, box, size: int) -> np.ndarray:
    """``data.decode: cuda``'s code on the CPU: torchvision decode, then the exact Pillow resample."""
    from adaptcli.data.stream.batch_decode import resample

    return resample(_tv_decode(data), box, size).permute(1, 2, 0).numpy()


def decoder_costs(samples: list[dict], spec: StreamSpec, frames: int = 400) -> dict[str, dict[str, float]]:
    """CPU ms per frame and pixel differences from the stream's path, for each candidate."""
    import torch

    torch.set_num_threads(1)  # as in a loader worker
    jpegs = [f for s in samples for f in frame_fields(s)][:frames]
    width, height = open_image(jpegs[0]).size
    rng = random.Random(0)
    boxes = [train_box("random_resized_crop", width, height, spec.img_size, spec.crop_scale, spec.crop_pct, rng)
             for _ in jpegs]
    paths = {"pil (stream)": lambda j, b: render(open_image(j), b, spec.img_size),
             "torchvision decode + pil resize": lambda j, b: _tv_pil(j, b, spec.img_size),
             "torchvision decode + torch resize": lambda j, b: _tv_torch(j, b, spec.img_size),
             "data.decode=cuda path, on the cpu": lambda j, b: _batch_path(j, b, spec.img_size)}
    reference = [paths["pil (stream)"](j, b).astype(np.int16) for j, b in zip(jpegs, boxes)]
    out = {}
    for name, run in paths.items():
        run(jpegs[0], boxes[0])  # warm-up: lazy imports, first allocations
        start = time.process_time()
        got = [run(j, b) for j, b in zip(jpegs, boxes)]
        ms = (time.process_time() - start) / len(jpegs) * 1e3
        diffs = [np.abs(g.astype(np.int16) - r) for g, r in zip(got, reference)]
        out[name] = {"ms": ms, "max": float(max(d.max() for d in diffs)),
                     "interior": float(max(d[2:-2, 2:-2].max() for d in diffs)),
                     "share>1": float(np.mean([(d > 1).mean() for d in diffs]))}
    return out


def print_decoders(samples: list[dict], spec: StreamSpec) -> None:
    costs = decoder_costs(samples, spec)
    base = costs["pil (stream)"]["ms"]
    print(f"\ndecode + random resized crop to {spec.img_size}, CPU ms per frame (one thread), and pixel "
          "differences from the stream's path (max; max inside a 2-pixel border; share of values off by > 1)")
    for name, c in costs.items():
        print(f"{name:>34}: {c['ms']:.3f} ms ({base / c['ms']:.2f}x)  max {c['max']:.0f}, interior "
              f"{c['interior']:.0f}, >1: {c['share>1']:.2%}")


def worker_costs(shards: Path, spec: StreamSpec, batch: int, batches: int = 6) -> dict[str, float]:
    """CPU ms per clip in the loader (one process, no workers): decoding there (``data.decode: cpu``)
    against only reading and sampling the JPEG bytes (``data.decode: cuda``)."""
    import torch


    torch.set_num_threads(1)
    out = {}
    for name, encoded in (("cpu", False), ("cuda", True)):
        stream, _ = train_loader(ShardFolder.read(shards), "train", spec, batch, seed=0, workers=0, encoded=encoded)
        start, clips = time.process_time(), 0
        for index, got in enumerate(stream.start(0)):
            clips += len(got.keys)
            if index + 1 == batches:
                break
        out[name] = (time.process_time() - start) / max(1, clips) * 1e3
    return out


def print_worker_costs(shards: Path, spec: StreamSpec, batch: int) -> None:
    costs = worker_costs(shards, spec, batch)
    print(f"\nloader CPU ms per clip ({spec.num_frames} frames, one thread): decoding in the workers "
          f"{costs['cpu']:.2f} ms; data.decode=cuda (bytes, boxes and flips only) {costs['cuda']:.2f} ms "
          f"({costs['cpu'] / costs['cuda']:.1f}x fewer CPU-seconds per clip; the decode moves to the GPU)")


# --------------------------------------------------------------------------- stored frame size


def short_side_cost(root: Path, clips: int = 6, frames: int = 24, num_frames: int = 16) -> dict[str, float]:
    """CPU ms per training clip (T sampled frames decoded and cropped) from 1280x720 sources prepared as
    they are and with ``--short-side 320``."""
    from adaptcli.data.manifest import read_manifest
    from adaptcli.data.prepare.prepare import prepare_dataset
    from adaptcli.data.synthetic import natural_clip, write_video
    from adaptcli.data.stream.tar_reader import iter_samples

    for i in range(clips):
        write_video(root / "src" / "train" / f"class{i % 2}" / f"clip{i}.avi", natural_clip(frames, 720, 1280, seed=i),
                    fps=30, codec="mpeg4", options={"b": "4000k"})
    spec = StreamSpec(img_size=224, num_frames=num_frames, mean=(0.5,) * 3, std=(0.5,) * 3)
    out = {}
    for name, side in (("as stored (720p)", 100000), ("--short-side 320", 320)):
        shards = root / f"shards-{side}"
        prepare_dataset("videofolder", root / "src", shards, splits="train", short_side=side, workers=1,
                        progress=False)
        samples = [s for n in read_manifest(shards).splits["train"].shards for s in iter_samples(shards / n)]
        decoder = SampleDecoder(spec, "video", train=True, flip=True)
        start = time.process_time()
        for repeat in range(3):
            for index, sample in enumerate(samples):
                decoder(sample, random.Random(repeat * 1000 + index))
        out[name] = (time.process_time() - start) / (3 * len(samples)) * 1e3
    return out


def print_short_side(root: Path) -> None:
    costs = short_side_cost(root)
    full, small = costs["as stored (720p)"], costs["--short-side 320"]
    print(f"\nstored frame size: CPU ms per 16-frame training clip from 1280x720 sources: as stored {full:.1f} ms, "
          f"--short-side 320 {small:.1f} ms ({full / small:.2f}x cheaper)")


__all__ = ["NO_GPU", "epoch_gap", "decoder_costs", "worker_costs", "short_side_cost", "print_epoch_gap",
           "print_worker_costs", "print_decoders",
           "print_short_side"]
