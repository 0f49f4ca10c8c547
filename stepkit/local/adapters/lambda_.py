"""`lambda:invoke` -> a function's handler here. Locally there is one function: stepkit's cleanup
function, whose payload (drop these tables, delete their files under the pipeline's `tables/`)
runs on the local catalog and the warehouse folders, through the same plan the deployed function
follows (stepkit/cleanup.py). Any other function is refused before the run starts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stepkit.interpreter import TaskCall, TaskFailure
from stepkit.ir.names import CLEANUP_FUNCTION
from stepkit.local.adapters import tasks

RESOURCES = ("arn:aws:states:::lambda:invoke",)


def _function(name: str) -> str:
    """A FunctionName as an unqualified ARN or name (a version or alias suffix dropped)."""
    parts = name.split(":")
    return ":".join(parts[:7]) if name.startswith("arn:") else parts[0]


def adapter(services: Any):
    names = services.plan.context.names
    cleanup = {names.function_arn(CLEANUP_FUNCTION), names.function(CLEANUP_FUNCTION)}

    def run(call: TaskCall) -> dict[str, Any]:
        params = call.parameters or {}
        function = _function(str(params.get("FunctionName", "")))
        if function not in cleanup:
            raise TaskFailure("Lambda.ResourceNotFoundException", f"{call.state}: no local function {function}")
        payload = params.get("Payload") or {}
        if isinstance(payload, str):
            payload = json.loads(payload)
        result = clean(services, payload)
        services.report(call.state, result)
        # The shape a `lambda:invoke` task's output has on AWS.
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": result}
    return run


def clean(services: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The cleanup function's plan, on the local catalog and the warehouse."""
    from stepkit.cleanup import plan as make_plan
    from stepkit.local.tasks import discard

    try:
        plan = make_plan(payload, services.root)
    except (ValueError, KeyError, TypeError) as e:
        raise TaskFailure("Lambda.Unknown", f"cleanup: {e}") from None
    with services.sql_lock.take():  # the catalog is the engine's (a turn after every numbered one)
        for name in plan.drop:
            services.engine.drop_table(plan.database, name)
    deleted = []
    for location in plan.delete:
        path = services.to_local(location)
        if path.exists():
            discard(services, Path(path))
            deleted.append(location)
    return {"dropped": plan.drop, "deleted": deleted}


def problems(definition: dict[str, Any], services: Any) -> list[str]:
    names = services.plan.context.names
    cleanup = {names.function_arn(CLEANUP_FUNCTION), names.function(CLEANUP_FUNCTION)}
    found = []
    for path, state in tasks.tasks_of(definition, RESOURCES):
        function = _function(str((state.get("Parameters") or {}).get("FunctionName", "")))
        if function not in cleanup:
            found.append(f"state {path}: Lambda function {function}: a local run has no Lambda functions; only "
                         f"stepkit's own {CLEANUP_FUNCTION!r} function runs locally")
    return found
