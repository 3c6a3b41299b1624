"""What the device decides about a run: autocast precision, pinned memory, DDP's unused-parameter search."""

from __future__ import annotations

import sys
from typing import Any

import torch

from adaptcli.config import RunConfig
from adaptcli.methods.registry import method_spec


def resolve_precision(precision: str, device: torch.device) -> str:
    """Accelerate's ``mixed_precision`` for ``train.precision``: ``auto`` is bf16 autocast on a CUDA
    device that supports bf16 and fp32 (``no``) anywhere else; the other values pass through."""
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def pins_memory(device: torch.device) -> bool:
    """Page-locked batches only help (and only work) when they are copied to a CUDA device."""
    return device.type == "cuda"


def build_accelerator(config: RunConfig, *, note: bool = False, **kwargs: Any):
    """An ``Accelerator`` with the run's resolved precision and the method's DDP settings.

    ``note``: say on stderr (main process only) when ``train.precision=auto`` falls back to fp32; training
    asks for it once per run, evaluation does not.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    from adaptcli.engine.distributed import force_cpu, partial_state

    state = partial_state()
    precision = resolve_precision(config.train.precision, state.device)
    if note and state.is_main_process and config.train.precision == "auto" and precision == "no":
        print(f"note: train.precision=auto trains in fp32 on {state.device.type} (bf16 autocast needs a CUDA GPU "
              "that supports bf16)", file=sys.stderr)
    # find_unused_parameters costs a graph traversal every step: only methods that need it pay.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=method_spec(config.method).unused_parameters)
    return Accelerator(cpu=force_cpu(), mixed_precision=precision, kwargs_handlers=[ddp], **kwargs)
