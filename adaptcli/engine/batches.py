"""The training batches of one epoch: the shard stream, or the cached features of a linear probe."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from adaptcli.engine.features import FeatureCache
from adaptcli.runs.folder import RunDir
from adaptcli.runs.session import Session


def epoch_batches(session: Session, epoch: int, accelerator: Any, *, pin_memory: bool,
                  features: FeatureCache | None = None) -> Iterator[dict[str, Any]]:
    """This process's batches of ``epoch`` (a pure function of seed, epoch, rank and worker)."""
    from adaptcli.data.loader import train_loader

    if features is not None:
        return iter(features.epoch_batches(epoch))
    config = session.config
    loader, _ = train_loader(
        session.data_dir, config.data.train_split, session.spec, config.train.batch_size,
        rank=accelerator.process_index, world_size=accelerator.num_processes, workers=config.data.workers,
        seed=config.train.seed, epoch=epoch, pin_memory=pin_memory, manifest=session.manifest,
    )
    return iter(loader)


def log_first_keys(run: RunDir, accelerator: Any, epoch: int, keys: list[str]) -> None:
    """Which samples each rank started the epoch with (shows that ranks read different data)."""
    from accelerate.utils import gather_object

    per_rank = gather_object([list(keys)]) if accelerator.num_processes > 1 else [list(keys)]
    if accelerator.is_main_process:
        run.log({"event": "data", "epoch": epoch + 1, "first_batch_keys": per_rank})
