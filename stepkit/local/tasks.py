"""Local pieces of the tasks a state machine runs: which worker module a container task runs, and
how the cleanup function's deletes happen on local disk.

A task key `NAME` in `compute.tasks` runs the worker module `stepkit.workers.NAME` (the module the
task's container image runs on AWS), or the task's own `module`.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import uuid
from pathlib import Path

from stepkit.errors import StepkitError


def worker_module(pipeline, task: str) -> str:
    spec = pipeline.compute.tasks.get(task)
    module = (spec.module if spec is not None else None) or f"stepkit.workers.{task}"
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise StepkitError(f"compute.tasks.{task}: no local worker: no module {module} (a local run runs it in a "
                           f"process instead of the container; compute.tasks.{task}.module names the module of "
                           "your own image)")
    return module


TRASH = "_trash"  # under the warehouse: hidden from the engine (a `_` name), same file system


def discard(ctx, path: Path) -> None:
    """Delete a folder: gone from its place at once (a rename), its files removed in a thread.

    A table's 898 partition folders took 0.3-0.6 s to remove, with the run waiting; the runner
    waits for the removals only when the run ends (`wait_discarded`)."""
    trash = ctx.workdir / "warehouse" / TRASH / uuid.uuid4().hex
    try:
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, trash)
    except OSError:  # another file system, or a permission problem: delete in place, now
        shutil.rmtree(path)
        return
    thread = threading.Thread(target=shutil.rmtree, args=(trash,), kwargs={"ignore_errors": True},
                              name="stepkit-discard", daemon=True)
    thread.start()
    ctx.extra.setdefault("discarding", []).append(thread)


def wait_discarded(ctx) -> None:
    """Wait for the folders `discard` is removing; also removes what a killed run left in the trash."""
    for thread in ctx.extra.pop("discarding", []):
        thread.join()
    shutil.rmtree(ctx.workdir / "warehouse" / TRASH, ignore_errors=True)
