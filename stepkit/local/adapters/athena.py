"""`athena:startQueryExecution(.sync)` -> the embedded engine (DuckDB), the QueryString exactly as
the state computed it.

The engine refuses what Athena refuses (a non-empty CTAS location, more than 100 partition
writers, INSERT INTO a bucketed table); a refused or failed statement fails the task as
States.TaskFailed, as a FAILED query fails a `.sync` task on AWS. Statements run one at a time:
Parallel branches may send several at once, and DuckDB uses every core for one already.
"""
from __future__ import annotations

import errno
import time
import uuid
from typing import Any

from stepkit.errors import StepkitError
from stepkit.interpreter import TaskCall, TaskFailure

RESOURCES = ("arn:aws:states:::athena:startQueryExecution.sync", "arn:aws:states:::athena:startQueryExecution")
DISK_FULL = ("No space left on device", "Disk is full", "not enough space")


def adapter(services: Any):
    def run(call: TaskCall) -> dict[str, Any]:
        params = call.parameters or {}
        sql = params.get("QueryString")
        if not isinstance(sql, str) or not sql.strip():
            raise TaskFailure("States.TaskFailed", f"{call.state}: no QueryString")
        submitted = time.perf_counter()
        stage = services.plan.stage_of.get(call.state)
        order = services.plan.stage(stage).index if stage else float("inf")
        with services.sql_lock.take(order):
            # A statement sent beside another (a Parallel's branches) waits its turn, as Athena
            # queues a query: the state's time includes the wait, its report says how much.
            started = time.perf_counter()
            if call.cancelled.is_set():
                raise TaskFailure("States.TaskFailed", "the query was cancelled before it started")
            try:
                result = services.engine.execute(sql)
            except KeyboardInterrupt:  # the engine was interrupted: the run is being stopped
                raise TaskFailure("States.TaskFailed", f"{call.state}: the query was stopped") from None
            except StepkitError as e:
                if any(m in str(e) for m in DISK_FULL):
                    services.abort("stepkit.DiskFull", str(e))
                raise TaskFailure("States.TaskFailed", str(e)) from None
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    services.abort("stepkit.DiskFull", f"{e.filename or services.warehouse}: {e.strerror}")
                raise
        ended = time.perf_counter()
        rows = result.rows_written if result.rows_written is not None else (
            None if result.kind in ("external", "drop") else len(result.rows or []))
        services.report(call.state, {"rows": rows, "kind": result.kind, "queued_seconds": round(started - submitted, 3)})
        # The shape GetQueryExecution returns (what a `.sync` task's output is on AWS).
        return {"QueryExecution": {
            "QueryExecutionId": str(uuid.uuid4()),
            "Query": sql,
            "StatementType": "DDL" if result.kind in ("external", "drop") else "DML",
            "WorkGroup": params.get("WorkGroup", "primary"),
            "QueryExecutionContext": params.get("QueryExecutionContext", {}),
            "Status": {"State": "SUCCEEDED"},
            "Statistics": {"EngineExecutionTimeInMillis": int((ended - started) * 1000),
                           "QueryQueueTimeInMillis": int((started - submitted) * 1000),
                           "TotalExecutionTimeInMillis": int((ended - submitted) * 1000)},
        }}
    return run


def problems(definition: dict[str, Any], services: Any) -> list[str]:
    return []
