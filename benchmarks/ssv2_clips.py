"""SSv2-like clips for a real ``prepare ssv2`` run: the SSv2 folder layout and label files, VP9 clips
of drifting natural textures at SSv2's size and frame rate (426x240, 12 fps, 2 to 6 s), built on
several cores.

    python benchmarks/ssv2_clips.py ROOT COUNT [--workers N] [--height 240 --width 426]

90% of the clips go to train, 10% to validation, over 8 templates (so a model can learn something).
"""

from __future__ import annotations

import argparse
import random
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from adaptcli.data.synthetic import SSV2_VIDEO_DIR, natural_clip, write_ssv2_layout, write_video

TEMPLATES = [f"{verb} [something] {way}" for verb in ("Moving", "Pushing") for way in ("left", "right", "up", "down")]


def _encode(job: tuple[str, str, int, int, int, int]) -> None:
    root, clip_id, frames, height, width, seed = job
    write_video(Path(root) / SSV2_VIDEO_DIR / f"{clip_id}.webm", natural_clip(frames, height, width, seed=seed), fps=12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=426)
    args = parser.parse_args()
    rng = random.Random(0)
    frames = [max(2, round(rng.triangular(2.0, 6.0, 3.2) * 12)) for _ in range(args.count)]
    ids = [str(10000 + i) for i in range(args.count)]
    placeholder = np.zeros((2, 8, 8, 3), np.uint8)  # the layout writer's clip, replaced below
    items = [(clip_id, TEMPLATES[i % len(TEMPLATES)], ["a box"], placeholder) for i, clip_id in enumerate(ids)]
    cut = max(1, args.count * 9 // 10)
    write_ssv2_layout(args.root, items, {"train": ids[:cut], "validation": ids[cut:]})
    jobs = [(str(args.root), clip_id, n, args.height, args.width, i) for i, (clip_id, n) in enumerate(zip(ids, frames))]
    with Pool(max(1, args.workers)) as pool:
        pool.map(_encode, jobs, chunksize=1)
    print(f"{args.count} clips, {sum(frames)} frames, {args.height}x{args.width}, in {args.root}")


if __name__ == "__main__":
    main()
