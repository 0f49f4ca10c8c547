"""What the local service adapters share during one run: the engine, the worker processes, the
mapping of the pipeline's S3 root onto the warehouse folder, and what each task reported.

The state machine a local run executes is the one `stepkit compile` writes and `stepkit deploy`
uploads, byte for byte: its SQL, commands and payloads name `s3://BUCKET/PREFIX/...`. Here that
root is the warehouse folder (`to_local`), so the same strings work on this machine.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from stepkit.errors import StepkitError


@dataclass
class Services:
    plan: Any  # stepkit.compiler.plan.Plan: what was compiled (AWS names)
    local: Any  # stepkit.ir.context.Context rooted at the warehouse (local names, for workers and reports)
    run_id: str
    workdir: Path
    run_dir: Path
    engine: Any  # stepkit.engines.duckdb.DuckDBEngine
    workers: Any  # stepkit.local.pool.Workers
    cores: int
    log: Callable[[str], None] = print
    # progress(stage, done, total)
    progress: Callable[[str, int, int], None] = lambda stage, done, total: None
    # Ends the run from inside an adapter (a full disk is not a task failure to retry): set by the runner.
    abort: Callable[[str, str], None] = lambda error, cause: None
    # What each state's task reported (rows written, a worker's summary), by state name.
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    extra: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)  # task calls by state name  # the folders being deleted (tasks.discard), ...
    # One statement at a time on the engine: Parallel branches may send SQL at once.
    sql_lock: "Turns" = field(default_factory=lambda: Turns())
    _tasks_running: int = 0
    _tasks_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> str:
        """`s3://bucket/prefix/`: what the compiled definition names."""
        return self.plan.context.names.root

    @property
    def warehouse(self) -> Path:
        return Path(self.local.names.root)

    def to_local(self, uri: str) -> Path:
        """A URI under the pipeline's root as the local path that stands for it."""
        if not uri.startswith(self.root):
            raise StepkitError(f"{uri}: a local run reads and writes only under the pipeline's root {self.root}")
        rest = uri[len(self.root):]
        if any(part in ("..",) for part in rest.split("/")):
            raise StepkitError(f"{uri}: '..' in a path under the pipeline's root")
        return self.warehouse / rest

    def close(self) -> None:
        """The run is over: the engine, the workers, and the folders still being deleted."""
        from stepkit.local.tasks import wait_discarded

        def close_engine() -> None:
            # After the statement a stopped run interrupted has let go of it: closing a connection that
            # is still running one fails, and DuckDB then aborts the process as it exits.
            with self.sql_lock.take(timeout=60):
                self.engine.close()

        # Each step on its own: a run that is ending on an error (or Ctrl-C) keeps that error as the news.
        for step in (close_engine, self.workers.close, lambda: wait_discarded(self)):
            try:
                step()
            except Exception as e:  # noqa: BLE001
                self.log(f"      (closing the run: {type(e).__name__}: {e})")

    def count(self, state: str) -> None:
        with self._tasks_lock:
            self.attempts[state] = self.attempts.get(state, 0) + 1

    def report(self, state: str, data: dict[str, Any]) -> None:
        self.reports[state].append(data)

    # A container task beside SQL keeps one core: its longest model fits run on one core, and
    # sharing it with the engine's threads made the task (and the wait for it) twice as long.
    def task_started(self) -> None:
        with self._tasks_lock:
            self._tasks_running += 1
            if self._tasks_running == 1 and self.cores > 1:
                self.engine.set_threads(self.cores - 1)

    def task_ended(self) -> None:
        with self._tasks_lock:
            self._tasks_running -= 1
            if self._tasks_running == 0:
                self.engine.set_threads(None)


class Turns:
    """A lock whose waiters go in the order of a number they give (the stage's place in the spec), not
    the order they came: when Parallel branches all wait for the engine, the statements of the branch
    that leads to a container task (TrainingFeatures before Training) go first, and the other branch's
    (EvaluationFeatures) then run while the task does. `with lock:` takes a turn of the lowest number."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._waiting: list[float] = []

    @contextmanager
    def take(self, order: float = float("inf"), timeout: float | None = None) -> Iterator[None]:
        """Raises TimeoutError when no turn came within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting.append(order)
            while self._busy or min(self._waiting) != order:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    self._waiting.remove(order)
                    raise TimeoutError("the engine stayed busy")
                self._cond.wait(left)
            self._waiting.remove(order)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


def cores() -> int:
    return len(os.sched_getaffinity(0))
