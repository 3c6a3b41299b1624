"""The run lock: ``RUN/run.lock`` names the process training the run (pid, host, start time).

Taken with ``os.link`` of a complete file (atomic, fails when the lock exists), so two processes
never both hold it and nobody reads a half-written one. A lock whose process is gone on this host
is stale: it is taken over with a note. A lock from another host is never taken over.

A takeover is check-then-replace, so takeovers are serialised by an exclusive ``flock`` on
``.run.lock.takeover``: the holder is read again under it, and only a lock still stale is moved
aside. Without that, two processes that both saw the same stale lock could each replace it (the
second replacing the first one's fresh lock) and both hold the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptcli.errors import AdaptError
from adaptcli.files import NotRegularFile, read_json

LOCK_NAME = "run.lock"
TAKEOVER_NAME = ".run.lock.takeover"
#: A lock adaptcli writes is about 80 bytes; anything much larger is not one, and is not read whole.
MAX_LOCK_BYTES = 4096


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): takeovers are not serialised
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def holder_text(holder: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {started})"


@dataclass
class RunLock:
    """The lock of one run folder; :meth:`acquire` it, :meth:`release` it when done."""

    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def holder(self) -> dict[str, Any] | None:
        """The record of the process holding the lock (None when there is none); a one-line error naming
        the file when it is not a lock adaptcli wrote (adaptcli never writes a partial one)."""
        try:
            record = read_json(self.path, MAX_LOCK_BYTES)
        except FileNotFoundError:
            return None
        except (ValueError, NotRegularFile):  # not UTF-8 JSON, larger than a lock, not a regular file
            raise self._not_a_lock("not the JSON record adaptcli writes") from None
        if not (isinstance(record, dict) and type(record.get("pid")) is int and isinstance(record.get("host"), str)
                and isinstance(record.get("started"), (int, float)) and not isinstance(record["started"], bool)):
            raise self._not_a_lock("it lacks the pid, host and start time adaptcli writes")
        return record

    def _not_a_lock(self, why: str) -> AdaptError:
        return AdaptError(f"{self.path} is not a run lock adaptcli wrote ({why}); if no adaptcli process is "
                          f"training in {self.folder}, delete {self.path} and run the command again")

    def live_holder(self, holder: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The holder (read now unless given) when it may still be running (another host counts)."""
        holder = self.holder() if holder is None else holder
        if holder is None:
            return None
        if holder.get("host") != socket.gethostname():
            return holder
        pid = int(holder.get("pid", -1))
        return holder if pid > 0 and pid != os.getpid() and process_alive(pid) else None

    def refuse_if_held(self, holder: dict[str, Any] | None = None) -> None:
        holder = self.live_holder(holder)
        if holder is not None:
            raise AdaptError(f"{self.folder} is in use by {holder_text(holder)}; wait for that run to end, "
                             "or stop it, or choose another --out")

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was taken over. Refuses a live holder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        staged = self.folder / f".{LOCK_NAME}.{os.getpid()}"
        staged.write_text(json.dumps(record))
        note = None
        try:
            for _ in range(5):
                try:
                    os.link(staged, self.path)
                    return note
                except FileExistsError:
                    pass
                with exclusive(self.folder / TAKEOVER_NAME):
                    stale = self.holder()  # read once: the file replaced below is the one judged stale
                    if stale is None:
                        continue
                    self.refuse_if_held(stale)
                    aside = self.folder / f".{LOCK_NAME}.stale.{os.getpid()}"
                    os.replace(self.path, aside)
                    aside.unlink(missing_ok=True)
                    if stale.get("pid") != os.getpid():
                        note = f"note: took over the stale lock of {holder_text(stale)}: that process is gone"
                    try:  # still under the flock, so no other takeover sees the gap
                        os.link(staged, self.path)
                        return note
                    except FileExistsError:
                        continue
            raise AdaptError(f"could not take the lock {self.path}; check who else writes {self.folder}")
        finally:
            staged.unlink(missing_ok=True)

    def release(self) -> None:
        try:
            holder = self.holder()
        except AdaptError:  # someone else's file replaced ours: not ours to delete
            return
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
