"""What the adapters need to know about the pipeline's container tasks and the definition's states."""
from __future__ import annotations

from typing import Any, Iterator

from stepkit.local.tasks import worker_module


def families(services: Any) -> dict[str, str]:
    """Task definition family -> `compute.tasks` key."""
    ctx = services.plan.context
    return {ctx.names.task_family(key): key for key in ctx.p.compute.tasks}


def module(services: Any, task: str) -> str:
    return worker_module(services.plan.context.p, task)


def walk(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(state path, state) of every Task, Map children and Parallel branches included."""
    from stepkit.ir.asl import every_state

    return ((path, state) for path, _, state in every_state(definition) if state.get("Type") == "Task")


def tasks_of(definition: dict[str, Any], resources: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, state in walk(definition):
        if state.get("Resource") in resources:
            yield path, state
