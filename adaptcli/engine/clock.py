"""A run's training wall time across its parts: a resumed run carries the seconds saved with its checkpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class RunClock:
    """``carried`` seconds from the parts before a resume, plus this part's since :meth:`start` (the time
    between the parts is not counted)."""

    carried: float = 0.0
    started: float = field(default_factory=time.time)

    def start(self, carried: float) -> None:
        self.carried, self.started = carried, time.time()

    def part(self) -> float:
        """This part's seconds."""
        return time.time() - self.started

    def total(self) -> float:
        """The run's training seconds so far."""
        return self.carried + self.part()


__all__ = ["RunClock"]
