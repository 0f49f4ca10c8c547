"""Local stand-ins for the AWS services a state machine calls, one module per integration,
chosen by the Task's `Resource` ARN. A definition naming a resource with no adapter here is
refused before the run starts, naming the state and the resource.
"""
from __future__ import annotations

from typing import Any

from stepkit.local.adapters import athena, ecs, lambda_, s3, sfn

MODULES = (athena, ecs, lambda_, s3, sfn)


def build(services: Any) -> dict[str, Any]:
    """Resource ARN -> adapter, for `stepkit.interpreter.Execution`."""
    out: dict[str, Any] = {}
    for module in MODULES:
        adapter = _counted(services, module.adapter(services))
        for resource in module.RESOURCES:
            out[resource] = adapter
    return out


def _counted(services: Any, adapter: Any) -> Any:
    from stepkit.local.faults import kill_at

    def call(task: Any) -> Any:
        services.count(task.state)  # every attempt, for the run record
        result = adapter(task)
        kill_at("commit", task.state)
        return result
    return call


def problems(definition: dict[str, Any], services: Any) -> list[str]:
    """Everything this machine cannot run, found before the run starts: one line each."""
    from stepkit.interpreter import check_resources

    found = list(check_resources(definition, build(services)))
    for module in MODULES:
        found += module.problems(definition, services)
    return found
