"""Worker processes for local runs: the fan-out's pool and one-off tasks (training).

Workers run in processes forked from a forkserver that has imported the worker module once,
so 898 batches pay the import (xgboost, pyarrow) once per process, not once per batch, and
a restarted pool is quick. A worker process that dies (killed, out of memory) breaks the
pool: every batch in flight then fails as `States.TaskFailed`, the pool is rebuilt and those
batches are retried per the compiled retry policy. Batches are deterministic and write
their own file, so a retry overwrites and never duplicates.
"""
from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from stepkit.errors import StepkitError

# Fault injection for tests: "MODULE:BATCH" kills the worker process running that batch of
# that worker module, on its first attempt, in the middle of writing its Parquet output.
FAULT_ENV = "STEPKIT_FAULT_KILL_WHILE_WRITING"
FAULT_FIRED = "fault-fired"


class TaskFailed(StepkitError):
    """A local task failed after its retries (the ASL's States.TaskFailed)."""


# The heavy libraries stepkit's workers use (stepkit/local/preload.py): imported once, into the
# forkserver, so each worker process (and each one restarted after a crash) starts with them loaded.
PRELOAD = ["stepkit.local.preload"]


def _context(module: str):
    # OpenMP threads that spin while they wait steal the core another worker (or DuckDB) needs:
    # on 2 busy cores a small xgboost fit ran 5x slower with spinning. libgomp reads this when it
    # loads, i.e. in the forkserver, so it is set here, before the forkserver starts.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ctx = multiprocessing.get_context("forkserver")
    # Takes effect when the forkserver starts (the first pool of this process, or start()).
    ctx.set_forkserver_preload(list(dict.fromkeys([*PRELOAD, *_STARTED, module])))
    return ctx


_STARTED: list[str] = []


def start(modules: list[str]) -> None:
    """Start the forkserver now, importing `modules` (the run's worker modules) in the background.

    Returns at once: the imports (~1 s) overlap the run's first stages instead of delaying the
    first task. A forkserver already running (an earlier run in this process) is kept."""
    from multiprocessing import forkserver, resource_tracker

    _STARTED[:] = list(dict.fromkeys([*modules, *_STARTED]))
    _context(PRELOAD[0])
    # Started with SIGINT blocked (inherited): a Ctrl-C before preload.py sets its handler would
    # otherwise end the new interpreter's start-up with a traceback. A Ctrl-C meanwhile reaches this
    # process once the mask is restored, as a KeyboardInterrupt. The resource tracker first: starting
    # it unblocks SIGINT in this thread (CPython's resource_tracker.ensure_running).
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def stop_soon() -> None:
    """Let the forkserver go now, in the background, once a run needs no more workers.

    Its exit (an interpreter holding xgboost, pyarrow and pandas) takes ~1 s; done at the end of
    the run, it kept the run's output pipe open that long after the run had finished. A later
    task starts a new one (ensure_running waits for this stop to complete first)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    stop = getattr(server, "_stop", None)  # CPython's own (its tests use it); absent: exit as before
    if stop is None or getattr(server, "_forkserver_pid", None) is None:
        return
    threading.Thread(target=stop, name="stepkit-forkserver-stop", daemon=True).start()


RUN_PID = "STEPKIT_RUN_PID"  # the run's own process: its workers end with it


def _warm(module: str, env: dict[str, str]) -> None:
    _die_with_run(int(env.get(RUN_PID, "0") or 0))
    # Replace, not update: the forkserver holds the environment of the moment it started, which
    # may carry an earlier run's settings (a fault injection once leaked into a later clean run).
    os.environ.clear()
    os.environ.update(env)
    importlib.import_module(module)


def _die_with_run(pid: int) -> None:
    """A worker ends as soon as the run's process does, however it ends (`kill -9` included).

    Its parent is the forkserver, which ends only once every process holding its "alive" pipe has,
    and each worker holds one: without this, a killed run's workers, forkserver and resource tracker
    lived on, keeping its output open. A thread waits on a pidfd of the run's process (Linux 5.3+;
    elsewhere a poll every half second)."""
    if not pid:
        return
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # gone already
        os._exit(1)
    except (OSError, AttributeError):
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while _alive(pid):
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="stepkit-run-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    # The forkserver keeps the environment of the moment it started (once per process); hand each
    # new worker the environment of now, so a later run's settings (and fault injection) reach it.
    return {**os.environ, RUN_PID: str(os.getpid()), **(extra or {})}


def _arm_fault(module: str, batch: int | None, attempt: int) -> bool:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec or attempt != 1 or batch is None:
        return False
    want_module, _, want_batch = spec.rpartition(":")
    if want_module != module or str(batch) != want_batch:
        return False
    import pyarrow.parquet as pq

    marker = os.environ.get(FAULT_ENV + "_MARKER")
    original = pq.ParquetWriter.write_table

    def write_then_die(self, table, *args, **kwargs):
        original(self, table, *args, **kwargs)  # row groups on disk, footer not yet: a torn file
        if marker:
            with open(marker, "a") as f:
                f.write(f"{module}:{batch}\n")
        os.kill(os.getpid(), signal.SIGKILL)

    pq.ParquetWriter.write_table = write_then_die
    return True


def _call(module: str, args: tuple[Any, ...], batch: int | None, attempt: int) -> Any:
    _arm_fault(module, batch, attempt)
    return importlib.import_module(module).run(*args)


def _describe(e: BaseException) -> str:
    if isinstance(e, BrokenProcessPool):
        return "the worker process died (killed or out of memory)"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


class Workers:
    """Worker processes for the run's container tasks.

    A task inside a Map (one batch of many) runs in a shared pool of `size` processes forked from the
    forkserver: 898 batches pay the imports once per process, not once per batch. A task on its own
    (training) gets a process of its own, whose memory goes back when it ends. A worker that dies
    breaks the shared pool: every batch in flight fails (States.TaskFailed, which the state's Retry
    then retries), and the next call gets a new pool. Batches are deterministic and write their own
    file, so a retry overwrites and never duplicates."""

    def __init__(self, size: int, env: dict[str, str] | None = None):
        self.size = max(1, size)
        self.env = env or {}
        self._pools: dict[str, ProcessPoolExecutor] = {}
        self._lock = threading.Lock()
        self.restarts = 0

    def _pool(self, module: str) -> ProcessPoolExecutor:
        with self._lock:
            pool = self._pools.get(module)
            if pool is None:
                env = _env({**self.env, **({"STEPKIT_THREADS": "1"} if self.size > 1 else {})})
                pool = ProcessPoolExecutor(self.size, mp_context=_context(module), initializer=_warm,
                                           initargs=(module, env))
                self._pools[module] = pool
            return pool

    def _broken(self, module: str, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pools.get(module) is pool:  # the first caller to see it replaces it
                del self._pools[module]
                self.restarts += 1
                threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True},
                                 daemon=True).start()

    def batch(self, module: str, args: tuple[Any, ...], batch: int | None, attempt: int,
              cancelled: threading.Event) -> Any:
        """`module.run(*args)` in the shared pool. Raises the worker's exception, or BrokenProcessPool."""
        pool = self._pool(module)
        try:
            future = pool.submit(_call, module, args, batch, attempt)
        except BrokenProcessPool:
            self._broken(module, pool)
            raise
        while True:
            try:
                return future.result(timeout=0.2)
            except FuturesTimeout:
                if cancelled.is_set():
                    future.cancel()
                    raise Cancelled() from None
            except BrokenProcessPool:
                self._broken(module, pool)
                raise

    def single(self, module: str, args: tuple[Any, ...], attempt: int, cancelled: threading.Event) -> Any:
        """`module.run(*args)` in a process of its own, ended with the call."""
        with ProcessPoolExecutor(1, mp_context=_context(module), initializer=_warm,
                                 initargs=(module, _env(self.env))) as pool:
            future = pool.submit(_call, module, args, None, attempt)
            while True:
                try:
                    return future.result(timeout=0.2)
                except FuturesTimeout:
                    if cancelled.is_set():
                        for proc in list(getattr(pool, "_processes", {}).values()):
                            proc.kill()  # a timed-out or stopped task: its container is stopped
                        raise Cancelled() from None

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)

    def kill(self) -> None:
        """End every worker process now (the run was stopped: SIGTERM reaches only the run's own process)."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            for proc in list(getattr(pool, "_processes", {}).values()):
                try:
                    proc.kill()
                except (OSError, ValueError):
                    pass


class Cancelled(Exception):
    """The task was cancelled (its timeout, a failed sibling branch, the run stopped)."""
