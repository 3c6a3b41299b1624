"""Process-group set-up that also works for several CPU processes (gloo), not only GPUs."""

from __future__ import annotations

import os


def force_cpu() -> bool:
    """True when Accelerate must be told ``cpu=True``.

    Accelerate only builds a multi-process CPU group (gloo) when asked for the CPU explicitly; a
    process started by ``torchrun`` / ``accelerate launch --multi_gpu`` on a machine without GPUs
    would otherwise run alone. Also honours ``accelerate launch --cpu`` (ACCELERATE_USE_CPU).
    """
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("LOCAL_RANK", "-1")) != -1
    return launched and not torch.cuda.is_available()


def partial_state():
    from accelerate import PartialState

    return PartialState(cpu=force_cpu())
