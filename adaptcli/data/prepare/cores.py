"""How many decoding processes ``prepare`` may start: up to the CPU cores this process may use."""

from __future__ import annotations

import os

from adaptcli.errors import AdaptError


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a Slurm or cgroup allotment), else the CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: Decoding processes allowed whatever the core count (the cap before it followed the cores).
ALWAYS_ALLOWED = 8


def decoding_workers(workers: int | None) -> int:
    """``--workers`` checked (one line, exit 2): up to the usable cores, or up to 8 on a smaller machine;
    None: one per usable core."""
    cores = usable_cores()
    if workers is None:
        return cores
    most = max(cores, ALWAYS_ALLOWED)
    if workers < 0 or workers > most:
        raise AdaptError(f"--workers {workers}: this machine lets adaptcli use {cores} CPU cores; "
                         f"pass --workers 0 to {most} (0: decode in the main process)")
    return workers


__all__ = ["ALWAYS_ALLOWED", "decoding_workers", "usable_cores"]
