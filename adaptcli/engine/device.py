"""What the device decides about a run: autocast precision, pinned memory, DDP's unused-parameter search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adaptcli.config import RunConfig
from adaptcli.errors import AdaptError
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


def decodes_on_device(setting: str, device: torch.device) -> bool:
    """Whether training batches are decoded on ``device`` (``data.decode``). ``auto`` stays on the CPU:
    no measurement in docs/performance.md shows the GPU path faster yet (torchcodec users report GPU
    decode of small frames slower than the CPU). ``cuda`` on a device that is not CUDA is one line."""
    if setting != "cuda":
        return False
    if device.type != "cuda":
        raise AdaptError(f"data.decode=cuda decodes batches on a CUDA GPU, but this run trains on {device.type}; "
                         "use data.decode=cpu")
    return True


def fp32_note(device: torch.device) -> str:
    """What a run says (once, with its other progress on stdout) when ``train.precision=auto`` falls back to fp32."""
    return (f"note: train.precision=auto trains in fp32 on {device.type} (bf16 autocast needs a CUDA GPU "
            "that supports bf16)")


def build_accelerator(config: RunConfig, **kwargs: Any):
    """An ``Accelerator`` with the run's resolved precision and the method's DDP settings."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    from adaptcli.engine.distributed import force_cpu, partial_state

    precision = resolve_precision(config.train.precision, partial_state().device)
    # find_unused_parameters costs a graph traversal every step: only methods that need it pay.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=method_spec(config.method).unused_parameters)
    return Accelerator(cpu=force_cpu(), mixed_precision=precision, kwargs_handlers=[ddp], **kwargs)


def training_accelerator(config: RunConfig, project_dir: Path) -> Any:
    """The Accelerator of a training run in ``project_dir``, with its gradient accumulation and trackers
    (started by the trainer, so nothing is written before run.json); ``data.decode=cuda`` without CUDA
    is refused in one line here, before any work."""
    from adaptcli.engine.tracking import tracker_names

    train = config.train
    accelerator = build_accelerator(config, gradient_accumulation_steps=train.accum_steps,
                                    log_with=tracker_names(train.log_with) or None, project_dir=str(project_dir))
    decodes_on_device(config.data.decode, accelerator.device)
    return accelerator
