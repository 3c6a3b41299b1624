"""``prepare``'s cost and output size per clip: clips per CPU-second and shard bytes per clip, at 30, 15 and
7.5 fps (``prepare --fps``), for SSv2-like and Kinetics-like clips, and the 1 -> 2 worker scaling.

Clips come from ``adaptcli.data.synthetic.natural_clip`` (textured scene, camera pan and zoom, a moving
object, sensor noise), written in each dataset's own layout and prepared by adaptcli's own
``prepare_dataset`` (the ``ssv2`` and ``kinetics`` sources, JPEG q90, short side <= 256):

  ssv2      427x240 VP9 webm, 12 fps, 2-6 s (triangular, mode 3.2 s), ``write_webm`` (crf 32, realtime);
            a 12 fps source keeps its 12 fps at --fps 30 and 15 (never up-sampled)
  kinetics  340x256 MPEG-4 part 2 at 600 kbit/s, 30 fps, 10 s (300 frames)

CPU time is the benchmark process's (PyAV's decoding threads included) plus that of its finished decoding
workers (``getrusage(RUSAGE_CHILDREN)``), minus what ``prepare`` spent encoding the few clips it samples
first for its projection (a fixed cost per dataset, not per clip). CPU-seconds measure work, also on a
shared machine; the wall-clock worker scaling is only valid on an otherwise idle machine (the load
average is printed before and after).

Usage: python benchmarks/prepare.py [--kinetics-clips 12] [--ssv2-clips 32] [--root DIR] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from adaptcli.data.prepare.prepare import prepare_dataset
from adaptcli.data.synthetic import SSV2_VIDEO_DIR, natural_clip, write_ssv2_layout, write_video

RATES = (30.0, 15.0, 7.5)
KINETICS = {"width": 340, "height": 256, "fps": 30, "seconds": 10.0, "codec": "mpeg4", "options": {"b": "600k"}}
SSV2 = {"width": 426, "height": 240, "fps": 12, "codec": "libvpx-vp9",
        "options": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"}}


def _encode(job: tuple[str, int, int, int, int, str, dict[str, str], int]) -> None:
    path, frames, height, width, fps, codec, options, seed = job
    write_video(path, natural_clip(frames, height, width, seed=seed), fps=fps, codec=codec, options=options)


def build_ssv2(root: Path, count: int, scale: float, pool) -> None:
    """SSv2's layout (label files, ``<id>.webm``): 2-6 s clips at 12 fps."""
    rng = random.Random(0)
    lengths = [max(2, round(rng.triangular(2.0, 6.0, 3.2) * SSV2["fps"])) for _ in range(count)]
    ids = [str(10000 + i) for i in range(count)]
    tiny = np.zeros((2, 8, 8, 3), np.uint8)  # the layout writer's clip, replaced below
    write_ssv2_layout(root, [(i, "Moving [something] left", ["a box"], tiny) for i in ids], {"train": ids})
    height, width = int(SSV2["height"] * scale) // 2 * 2, int(SSV2["width"] * scale) // 2 * 2
    pool.map(_encode, [(str(root / SSV2_VIDEO_DIR / f"{i}.webm"), n, height, width, SSV2["fps"], SSV2["codec"],
                        SSV2["options"], seed) for seed, (i, n) in enumerate(zip(ids, lengths))], chunksize=1)


def build_kinetics(root: Path, count: int, scale: float, seconds: float, pool) -> None:
    """Kinetics as distributed: ``annotations/train.csv`` and ``{youtube_id}_{start}_{end}.mp4`` clips."""
    (root / "annotations").mkdir(parents=True)
    rows, jobs = [], []
    height, width = int(KINETICS["height"] * scale) // 2 * 2, int(KINETICS["width"] * scale) // 2 * 2
    for i in range(count):
        label = ("abseiling", "juggling balls")[i % 2]
        rows.append(f"{label},clip{i:04d},0,10,train\n")
        path = root / "train" / label / f"clip{i:04d}_000000_000010.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((str(path), round(seconds * KINETICS["fps"]), height, width, KINETICS["fps"], KINETICS["codec"],
                     KINETICS["options"], 1000 + i))
    (root / "annotations" / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "".join(rows))
    pool.map(_encode, jobs, chunksize=1)


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Measured:
    clips: int
    frames: float  # stored per clip
    stored_fps: float
    bytes: float  # shard bytes per clip
    cpu: float  # CPU-seconds per clip
    wall: float  # seconds for the whole run
    projected: float  # projected / written bytes


def measure(dataset: str, src: Path, out: Path, fps: float | None, workers: int) -> Measured:
    """Prepare ``src`` into a fresh ``out`` once, timed."""
    import json

    shutil.rmtree(out, ignore_errors=True)
    cpu, wall = _cpu(), time.perf_counter()
    [result] = prepare_dataset(dataset, src, out, workers=workers, fps=fps, progress=False)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    projection = result.projection
    assert projection is not None
    clips = result.written
    sample = json.loads(_first_record(out))
    split = result.manifest.splits["train"]
    return Measured(clips=clips, frames=(split.frames or {}).get("mean", 0.0), stored_fps=sample["stored_fps"],
                    bytes=result.bytes / clips, cpu=(cpu - projection.sampled_cpu_seconds) / clips, wall=wall,
                    projected=projection.bytes / result.bytes)


def _first_record(out: Path) -> str:
    from adaptcli.data.stream.tar_reader import iter_members

    shard = sorted(out.glob("train-*.tar"))[0]
    return next(data.decode() for name, data in iter_members(shard) if name.endswith(".json"))


@dataclass(frozen=True)
class Dataset:
    """Published (or, where marked in docs/data.md, assumed) size of a dataset, and its recipe's rate."""

    name: str
    clips: int
    seconds: float  # mean clip length
    fps: float  # source rate
    recipe_fps: float  # the rate its recipe reads (stride 4: fps / 4; segment sampling: every frame)
    profile: str  # whose per-frame costs apply


DATASETS = (
    Dataset("SSv2", 220_847, 3.73, 12, 12, "ssv2"),  # segment sampling: every frame
    Dataset("Kinetics-400", 306_245, 10.0, 30, 7.5, "kinetics"),
    Dataset("Kinetics-700", 650_317, 10.0, 30, 7.5, "kinetics"),
    Dataset("UCF101", 13_320, 7.21, 25, 6.25, "kinetics"),
    Dataset("HMDB51", 6_766, 3.73, 30, 7.5, "kinetics"),
)


@dataclass
class PerFrame:
    """What ``prepare`` costs per frame: decoding per source frame, RGB + JPEG and shard bytes per stored one."""

    decode: float  # CPU-s
    jpeg: float  # CPU-s
    bytes: float

    def clip(self, seconds: float, fps: float, stored: float) -> tuple[float, float]:
        """(shard bytes, CPU-s) of one clip of ``seconds`` at ``fps`` stored at ``stored`` fps."""
        frames = seconds * min(fps, stored)
        return frames * self.bytes, seconds * fps * self.decode + frames * self.jpeg


def per_frame(rows: dict[float, Measured], source_fps: float) -> PerFrame:
    """Solve CPU = decode x source frames + jpeg x stored frames from the full and the lowest rate."""
    base, low = rows[RATES[0]], rows[RATES[-1]]
    jpeg = (base.cpu - low.cpu) / (base.frames - low.frames)
    source_frames = base.frames * source_fps / base.stored_fps
    return PerFrame(decode=max(0.0, (base.cpu - jpeg * base.frames) / source_frames), jpeg=jpeg,
                    bytes=base.bytes / base.frames)


def sizing_table(costs: dict[str, PerFrame]) -> None:
    print("\nsizing (docs/data.md): the per-frame costs above x each dataset's clips, mean length and rate\n")
    print("| dataset | clips | mean s | source fps | recipe's rate | shards at that rate | CPU-hours at that rate "
          "| shards, every frame | CPU-hours, every frame |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in DATASETS:
        cost = costs[d.profile]
        size, cpu = cost.clip(d.seconds, d.fps, d.recipe_fps)
        full_size, full_cpu = cost.clip(d.seconds, d.fps, d.fps)
        print(f"| {d.name} | {d.clips:,} | {d.seconds:g} | {d.fps:g} | {d.recipe_fps:g} | {size * d.clips / 1e9:,.1f} GB "
              f"| {cpu * d.clips / 3600:,.2f} | {full_size * d.clips / 1e9:,.1f} GB | {full_cpu * d.clips / 3600:,.2f} |")


def rate_table(name: str, rows: dict[float, Measured], source_fps: float) -> None:
    base = rows[RATES[0]]
    print(f"\n{name}: {base.clips} clips, one run each\n")
    print("| --fps | stored fps | frames per clip | shard kB per clip | bytes vs 30 | clips per CPU-s | CPU-s per clip "
          "| CPU vs 30 | projected / written |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for fps, m in rows.items():
        print(f"| {fps:g} | {m.stored_fps:g} | {m.frames:.1f} | {m.bytes / 1e3:.0f} | {m.bytes / base.bytes:.2f}x "
              f"| {1 / m.cpu:.2f} | {m.cpu:.3f} | {m.cpu / base.cpu:.2f}x | {m.projected:.2f} |")
    cost = per_frame(rows, source_fps)
    print(f"\n{name} per frame: decode {cost.decode * 1e3:.2f} ms CPU per source frame, RGB + JPEG "
          f"{cost.jpeg * 1e3:.2f} ms per stored frame, {cost.bytes / 1e3:.1f} kB of shard per stored frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinetics-clips", type=int, default=12)
    parser.add_argument("--ssv2-clips", type=int, default=32)
    parser.add_argument("--root", type=Path, default=None, help="where to build the data (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="4 + 4 small, short clips: a smoke run, numbers mean nothing")
    args = parser.parse_args()
    scale, seconds = (0.25, 2.0) if args.quick else (1.0, KINETICS["seconds"])
    if args.quick:
        args.kinetics_clips, args.ssv2_clips = 4, 4
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with Pool(2) as pool:
        build_kinetics(root / "kinetics", args.kinetics_clips, scale, seconds, pool)
        build_ssv2(root / "ssv2", args.ssv2_clips, scale, pool)
    video = sum(p.stat().st_size for p in (root / "kinetics").rglob("*.mp4")) / args.kinetics_clips
    print(f"data: {args.kinetics_clips} Kinetics-like clips ({KINETICS['width']}x{KINETICS['height']} MPEG-4 600 kbit/s, "
          f"30 fps, {seconds:g} s, {video / 1e6:.2f} MB each), {args.ssv2_clips} SSv2-like clips "
          f"({SSV2['width']}x{SSV2['height']} VP9, 12 fps, 2-6 s); scale {scale:g}")
    kinetics = {fps: measure("kinetics", root / "kinetics", root / "out", fps, 0) for fps in RATES}
    rate_table("kinetics-like", kinetics, KINETICS["fps"])
    ssv2 = {fps: measure("ssv2", root / "ssv2", root / "out", fps, 0) for fps in RATES}
    rate_table("ssv2-like", ssv2, SSV2["fps"])

    print("\nworkers (kinetics-like, 30 fps): CPU is per clip; the wall-clock speed-up only counts on an idle machine\n")
    print("| workers | CPU-s per clip | wall s | wall speed-up |")
    print("| --- | --- | --- | --- |")
    scaling = {workers: measure("kinetics", root / "kinetics", root / "out", None, workers) for workers in (1, 2)}
    for workers, m in scaling.items():
        print(f"| {workers} | {m.cpu:.3f} | {m.wall:.2f} | {scaling[1].wall / m.wall:.2f}x |")
    sizing_table({"kinetics": per_frame(kinetics, KINETICS["fps"]), "ssv2": per_frame(ssv2, SSV2["fps"])})
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (above {os.cpu_count()}: the wall-clock rows are not valid)")
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
