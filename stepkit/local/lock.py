"""One run at a time in a work folder.

A run's first clean-up (`scope: all`) deletes every run's intermediate tables in the warehouse: a
second run started beside the first would delete the first one's tables mid-run. The lock is an
flock on `WORKDIR/.lock`, which the kernel releases when the holding process ends, however it ends
(`kill -9` included): a killed run can never wedge the folder. The file says who holds it, for the
message a second run gets.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from stepkit.errors import StepkitError

LOCK = ".lock"


class WorkdirLock:
    def __init__(self, workdir: Path):
        self.path = Path(workdir) / LOCK
        self._fd: int | None = None

    def acquire(self, run_id: str, pipeline: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            who = f"run {holder.get('run_id', '?')} of {holder.get('pipeline', '?')} (pid {holder.get('pid', '?')})"
            raise StepkitError(f"{self.path.parent}: {who} is running in this work folder; wait for it to end, or "
                               "use another --workdir (its first clean-up deletes every run's tables here)") from None
        self._fd = fd
        self.say(run_id, pipeline)

    def say(self, run_id: str, pipeline: str) -> None:
        """Write who holds the lock (a new run says its id once it has one)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps({"run_id": run_id, "pipeline": pipeline, "pid": os.getpid(),
                                            "since": time.time()}).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}


def holder(workdir: Path) -> dict | None:
    """Who holds the work folder's lock now (run_id, pipeline, pid), or None when no run is going."""
    path = Path(workdir) / LOCK
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
