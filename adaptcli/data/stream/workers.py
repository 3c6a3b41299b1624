"""What a DataLoader worker needs to know about itself: its slot, its seeds, which signals it ignores,
and how the loader's iteration stops its workers whatever ends it."""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def seed_of(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes, unlike ``hash`` of strings)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value * 6364136223846793005 + int(part) + 1442695040888963407) % (1 << 64)
    return value >> 1


def worker_slot() -> tuple[int, int]:
    """(this worker's id, the loader's worker count); (0, 1) in the main process."""
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class WorkerSeed:
    """``worker_seed`` for ResampledShards: depends only on (rank, worker), never on the pid."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self) -> int:
        return self.rank * 1000 + worker_slot()[0]


def ignore_stop_signals(worker_id: int) -> None:
    """``worker_init_fn`` of every loader: a worker ignores SIGTERM and SIGUSR1. Schedulers (Slurm on
    preemption) signal the whole process group; a worker killed by it would fail the trainer's next
    fetch with a traceback and no checkpoint. The trainer catches the signal, saves, and stops its
    workers itself (they also exit when the trainer's process is gone)."""
    for name in ("SIGTERM", "SIGUSR1"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


def iterate_stopping_workers(loader: Iterable[T]) -> Iterator[T]:
    """Iterate ``loader`` and stop its worker processes as soon as the iteration ends, also by an error.

    Why not leave it to the iterator's ``__del__``: the workers ignore SIGTERM (:func:`ignore_stop_signals`),
    and an error's traceback keeps the iterator alive until the interpreter exits, where multiprocessing's
    exit handler terminates daemon processes with SIGTERM and then waits for them: forever. torch's
    ``_shutdown_workers`` (idempotent; absent without workers) tells them to finish instead.
    """
    iterator = iter(loader)
    try:
        yield from iterator
    finally:
        stop_workers(iterator)


def stop_workers(iterator: Any) -> None:
    """Stop the worker processes of a DataLoader iterator now (nothing for one without workers)."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


__all__ = ["WorkerSeed", "ignore_stop_signals", "iterate_stopping_workers", "seed_of", "stop_workers",
           "worker_slot"]
