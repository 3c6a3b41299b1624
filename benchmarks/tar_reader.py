"""Reading a shard: adaptcli's tar reader against webdataset's ``tarfile_samples``.

    python benchmarks/tar_reader.py [--clips 32] [--frames 32] [--frame-bytes 6000] [--repeats 20] [--quick]

Writes one shard of ``clips`` samples (``frames`` JPEG-sized members plus ``cls`` and ``json`` each),
checks that both readers give the same samples, and prints the best time per clip of each.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
from pathlib import Path

from measure import stopwatch

from adaptcli.data.stream.tar_reader import iter_samples


def write_shard(path: Path, clips: int, frames: int, frame_bytes: int) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for clip in range(clips):
            members = [(f"{f:03d}.jpg", frame_bytes) for f in range(frames)] + [("cls", 2), ("json", 200)]
            for name, size in members:
                info = tarfile.TarInfo(f"clip{clip:04d}.{name}")
                info.size = size
                tar.addfile(info, io.BytesIO(os.urandom(size)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--frame-bytes", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 clips of 4 frames, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.frames, args.repeats = 4, 4, 2
    import webdataset as wds

    readers = {
        "adaptcli": lambda path: list(iter_samples(path)),
        "webdataset": lambda path: list(wds.tariterators.tarfile_samples([{"url": str(path)}])),
    }
    with tempfile.TemporaryDirectory(prefix="adaptcli-bench-") as tmp:
        path = Path(tmp) / "shard.tar"
        write_shard(path, args.clips, args.frames, args.frame_bytes)
        ours, theirs = (read(path) for read in readers.values())
        assert [s["__key__"] for s in ours] == [s["__key__"] for s in theirs]
        assert all(a[k] == b[k] for a, b in zip(ours, theirs) for k in a if k != "__url__")
        for name, read in readers.items():
            times = []
            for _ in range(args.repeats):
                with stopwatch() as elapsed:
                    read(path)
                times.append(elapsed.wall)
            print(f"{name:>10}: {min(times) * 1e3 / args.clips:.2f} ms per clip ({args.frames + 2} members), "
                  f"best of {args.repeats}")


if __name__ == "__main__":
    main()
