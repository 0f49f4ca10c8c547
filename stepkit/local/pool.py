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
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable

from stepkit.errors import StepkitError
from stepkit.local.retry import TASK_FAILED, Attempts, RetryPolicy

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


def _warm(module: str, env: dict[str, str]) -> None:
    # Replace, not update: the forkserver holds the environment of the moment it started, which
    # may carry an earlier run's settings (a fault injection once leaked into a later clean run).
    os.environ.clear()
    os.environ.update(env)
    importlib.import_module(module)


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    # The forkserver keeps the environment of the moment it started (once per process); hand each
    # new worker the environment of now, so a later run's settings (and fault injection) reach it.
    return {**os.environ, **(extra or {})}


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


@dataclass
class FanOutResult:
    results: dict[int, Any] = field(default_factory=dict)
    attempts: int = 0
    retried: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    pool_restarts: int = 0


def _describe(e: BaseException) -> str:
    if isinstance(e, BrokenProcessPool):
        return "the worker process died (killed or out of memory)"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_batches(module: str, config_uri: str, run_id: str, batch_ids: list[int], concurrency: int,
                policy: RetryPolicy, tolerated: int = 0, stage: str = "fan-out",
                progress: Callable[[str, int, int], None] = lambda s, d, t: None,
                log: Callable[[str], None] = print, env: dict[str, str] | None = None) -> FanOutResult:
    """`module.run(config_uri, run_id, batch_id)` for every batch, `concurrency` processes at once."""
    env = _env(env)
    out = FanOutResult()
    tries = {b: Attempts(policy) for b in batch_ids}
    pending = deque(batch_ids)
    # One batch queued beyond the running ones keeps every process busy (as the pool's own call
    # queue does); more would only widen what a broken pool fails along with the dead batch.
    window = concurrency + 1
    total = len(batch_ids)

    def make() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(concurrency, mp_context=_context(module), initializer=_warm,
                                   initargs=(module, env))

    def failed(batch: int, e: BaseException) -> None:
        why = _describe(e)
        delay = tries[batch].retry_delay(TASK_FAILED)
        if delay is None:
            out.failed[batch] = why
            log(f"      {stage}: batch {batch} failed after {tries[batch].total} attempt(s): {why}")
            return
        log(f"      {stage}: batch {batch} attempt {tries[batch].total} failed ({why}); retrying")
        out.retried.append(batch)
        time.sleep(delay)
        pending.append(batch)

    pool = make()
    in_flight: dict[Future, int] = {}
    try:
        while pending or in_flight:
            if len(out.failed) > tolerated:
                break
            while pending and len(in_flight) < window:
                b = pending.popleft()
                attempt = tries[b].start()
                out.attempts += 1
                in_flight[pool.submit(_call, module, (config_uri, run_id, b), b, attempt)] = b
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = any(isinstance(f.exception(), BrokenProcessPool) for f in done)
            if broken:
                # Every future of a broken pool fails; collect them all, then start a new pool.
                done, _ = wait(in_flight)
            for f in done:
                b = in_flight.pop(f)
                e = f.exception()
                if e is None:
                    out.results[b] = f.result()
                    progress(stage, len(out.results), total)
                else:
                    failed(b, e)
            if broken:
                pool.shutdown(wait=True, cancel_futures=True)
                out.pool_restarts += 1
                pool = make()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if len(out.failed) > tolerated:
        first = min(out.failed)
        raise TaskFailed(f"{stage}: {len(out.failed)} of {total} batches failed (tolerated: {tolerated}); "
                         f"batch {first}: {out.failed[first]}")
    return out


def run_task(module: str, args: tuple[Any, ...], policy: RetryPolicy, stage: str,
             log: Callable[[str], None] = print, env: dict[str, str] | None = None) -> tuple[Any, int]:
    """One task in its own process (its memory is returned when it ends), retried per `policy`."""
    tries = Attempts(policy)
    while True:
        attempt = tries.start()
        with ProcessPoolExecutor(1, mp_context=_context(module), initializer=_warm,
                                 initargs=(module, _env(env))) as pool:
            future = pool.submit(_call, module, args, None, attempt)
            try:
                return future.result(), attempt
            except StepkitError as e:
                error: BaseException = e
            except BrokenProcessPool as e:
                error = e
            except Exception as e:  # the worker's own failure: a task failure, as on Fargate
                error = e
        delay = tries.retry_delay(TASK_FAILED)
        if delay is None:
            if isinstance(error, StepkitError):
                raise error
            raise TaskFailed(f"{stage}: {_describe(error)}") from None
        log(f"      {stage}: attempt {attempt} failed ({_describe(error)}); retrying")
        time.sleep(delay)
