"""Timing loops and FLOP counting shared by the benchmarks (imported as a sibling module: Python puts
the running script's folder on ``sys.path``).

Every timing reads two clocks: wall time and this process's CPU time (on a shared machine CPU time
measures work, not scheduling).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Elapsed:
    """Seconds of wall-clock and process-CPU time, filled in when the ``stopwatch`` block ends."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def stopwatch(sync: Callable[[], None] = lambda: None) -> Iterator[Elapsed]:
    """Time the block on both clocks; ``sync`` (e.g. ``torch.cuda.synchronize``) runs before and after."""
    elapsed = Elapsed()
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    yield elapsed
    sync()
    elapsed.wall, elapsed.cpu = time.perf_counter() - wall, time.process_time() - cpu


def cuda_sync(device: Any) -> Callable[[], None]:
    """``torch.cuda.synchronize`` on a CUDA device, else a no-op."""
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)


def time_interleaved(steps: dict[str, Callable[[], Any]], rounds: int, warmup: int, *,
                     sync: Callable[[], None] = lambda: None, alternate: bool = False,
                     on_round: Callable[[int, dict[str, list[float]], dict[str, list[float]]], None] | None = None,
                     ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each call of every step, timed in interleaved rounds (A B C ... A B C ...,
    every other round reversed when ``alternate``) so that drift hits all of them alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    sync()
    wall: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for index in range(rounds):
        for name in order[::-1] if alternate and index % 2 else order:
            with stopwatch(sync) as elapsed:
                steps[name]()
            wall[name].append(elapsed.wall)
            cpu[name].append(elapsed.cpu)
        if on_round is not None:
            on_round(index, wall, cpu)
    return wall, cpu


def throughput(batches: Iterable[Any], warmup: int = 1) -> tuple[float, float]:
    """(samples per wall-clock second, samples per CPU second of this process) after ``warmup`` batches;
    a batch (:class:`adaptcli.data.stream.batch.Batch`) counts ``len(batch.keys)`` samples."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    count = 0
    with stopwatch() as elapsed:
        for batch in it:
            count += len(batch.keys)
    return count / elapsed.wall, count / max(1e-9, elapsed.cpu)


def count_flops(run: Callable[[], Any]) -> int:
    """FLOPs of ``run()`` by torch's FlopCounterMode (matmuls, convolutions and attention; element-wise
    ops are not counted). Runs on the meta device cost no compute."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return counter.get_total_flops()
