"""Peak memory of a training session: allocated tensors on a GPU, the resident set on CPU."""

from __future__ import annotations

import torch


def reset_peak_memory(device: torch.device) -> None:
    """Start counting the accelerator's peak memory from here (the CPU's peak RSS cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """Peak memory in MiB and what it measures: allocated tensors on a GPU, the process's resident set on CPU."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1), "cuda_max_memory_allocated"
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1), "cpu_peak_rss"
