"""`aws-sdk:sfn:listExecutions` (the one-run-at-a-time check) -> the runs of this work folder.

A local run holds the work folder's lock for as long as it runs (stepkit/local/lock.py): no other
run of any pipeline can be running in it, so the answer is this execution alone."""
from __future__ import annotations

from typing import Any

from stepkit.interpreter import TaskCall

RESOURCES = ("arn:aws:states:::aws-sdk:sfn:listExecutions",)


def adapter(services: Any):
    def run(call: TaskCall) -> dict[str, Any]:
        execution = call.context.get("Execution", {})
        return {"Executions": [{"ExecutionArn": execution.get("Id", ""), "Name": execution.get("Name", ""),
                                "StateMachineArn": (call.parameters or {}).get("StateMachineArn", ""),
                                "Status": "RUNNING"}]}
    return run


def problems(definition: dict[str, Any], services: Any) -> list[str]:
    return []
