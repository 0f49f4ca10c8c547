"""Local execution of the blocks that run code on AWS: Fargate tasks, the fan-out, cleanup.

The blocks' `run_local` methods are thin and call these, so the process handling stays in
one place. A task key `NAME` in `compute.tasks` runs the worker module `stepkit.workers.NAME`
(the module the task's container image runs on AWS), or the task's own `module`.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from stepkit.errors import StepkitError
from stepkit.local import pool
from stepkit.local.retry import RetryPolicy


def worker_module(pipeline, stage_name: str, task: str) -> str:
    spec = pipeline.compute.tasks.get(task)
    module = (spec.module if spec is not None else None) or f"stepkit.workers.{task}"
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise StepkitError(f"stages.{stage_name}.task: {task!r} has no local worker: no module {module} "
                           f"(a local run runs it in a process instead of the container; compute.tasks.{task}.module "
                           "names the module of your own image)")
    return module


def _worker_env(ctx) -> dict[str, str]:
    # One process per core: each worker's model uses one thread, or they fight over the cores.
    return {"STEPKIT_THREADS": "1"} if ctx.concurrency > 1 else {}


def fargate_task(ctx, stage) -> dict[str, Any]:
    """One worker run in its own process. Its compiled Retry names only ECS throttling, which
    cannot happen locally, so a failure fails the stage (as a failed container does)."""
    module = worker_module(ctx.compile.p, stage.name, stage.task)
    if stage.args:
        raise StepkitError(f"stages.{stage.name}.args: extra worker arguments are not supported by local runs yet")
    result, _ = pool.run_task(module, (str(ctx.config_path), ctx.run_id), RetryPolicy([]), stage.name, ctx.log)
    return dict(result or {})


def fan_out(ctx, stage) -> dict[str, Any]:
    """Every batch through the worker, `ctx.concurrency` processes at once, retried per the
    compiled child state's Retry (States.TaskFailed: a batch whose worker failed or died)."""
    module = worker_module(ctx.compile.p, stage.name, stage.task)
    if stage.args:
        raise StepkitError(f"stages.{stage.name}.args: extra worker arguments are not supported by local runs yet")
    _, child = stage._child(ctx.compile)
    ids = ctx.extra.get("batch_ids") or list(range(ctx.compile.p.batching.batches))
    tolerated = len(ids) * ctx.compile.p.batching.tolerated_failure_percentage // 100
    out = pool.run_batches(module, str(ctx.config_path), ctx.run_id, ids, ctx.concurrency, RetryPolicy.of(child),
                           tolerated=tolerated, stage=stage.name, progress=ctx.progress, log=ctx.log,
                           env=_worker_env(ctx))
    rows = [r.get("rows") for r in out.results.values() if isinstance(r, dict)]
    return {
        "rows": sum(int(r) for r in rows if r is not None) if rows else None,
        "batches": len(out.results),
        "attempts": out.attempts,
        "retried": sorted(set(out.retried)),
        "pool_restarts": out.pool_restarts,
        "note": f", {len(ids)} batches on {ctx.concurrency} processes"
        + (f", {len(out.retried)} retried" if out.retried else ""),
    }


def cleanup(ctx, payload: dict[str, Any]) -> dict[str, Any]:
    """The cleanup Lambda's plan, on the local catalog and warehouse folders."""
    from stepkit.cleanup import plan as make_plan

    payload = {k: v for k, v in payload.items() if not k.endswith(".$")}
    payload["run_id"] = ctx.run_id
    try:
        plan = make_plan(payload, ctx.names.root)
    except ValueError as e:
        raise StepkitError(f"cleanup: {e}") from None
    for name in plan.drop:
        ctx.engine.drop_table(plan.database, name)
    deleted = []
    for location in plan.delete:
        path = Path(location)
        if path.exists():
            discard(ctx, path)
            deleted.append(location)
    return {"dropped": plan.drop, "deleted": deleted}


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
