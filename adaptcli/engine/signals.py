"""Stop signals: schedulers send SIGTERM or SIGUSR1 before preemption; training then finishes the
current step, saves a checkpoint and stops (instead of dying mid-write)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import torch

from adaptcli.errors import Interrupted
from adaptcli.runs.checkpoint import TrainState
from adaptcli.runs.folder import RunDir
from adaptcli.runs.record import mark_interrupted

#: Signals that ask a run to stop.
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


class StopSignals:
    """Remembers the first stop signal received while :meth:`caught` is active."""

    def __init__(self) -> None:
        self.received: str | None = None

    def _record(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum).name

    @contextmanager
    def caught(self) -> Iterator[None]:
        """Catch the stop signals (only the main thread may install handlers), then restore the previous ones."""
        handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {getattr(signal, name): signal.signal(getattr(signal, name), self._record) for name in STOP_SIGNALS}
        try:
            yield
        finally:
            for signum, previous in handlers.items():
                signal.signal(signum, previous)

    def requested(self, accelerator: Any) -> bool:
        """A stop signal reached any process (all processes agree, so they stop at the same step)."""
        flag = self.received is not None
        if accelerator.num_processes > 1:
            tensor = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
            flag = bool(accelerator.reduce(tensor, reduction="sum").item() > 0)
        return flag

    def stop(self, run: RunDir, accelerator: Any, state: TrainState, checkpoint: Path) -> NoReturn:
        """Record the interruption in run.json, flush the trackers, raise :class:`Interrupted`."""
        if accelerator.is_main_process:
            mark_interrupted(run, state.epoch, state.step, checkpoint.name,
                             reason=self.received or "a stop signal on another process")
        for tracker in accelerator.trackers:  # the process exits next: flush what the trackers hold
            tracker.finish()
        raise Interrupted(f"{self.received or 'stop signal'} at epoch {state.epoch + 1}, step {state.step}: "
                          f"checkpoint saved in {checkpoint}; continue with the same command and --resume")
