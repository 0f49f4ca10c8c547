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
    def inner(states: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, state in states.items():
            path = f"{prefix}{name}"
            if state.get("Type") == "Task":
                yield path, state
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                yield from inner(processor.get("States", {}), f"{path}/")
            for branch in state.get("Branches", []):
                yield from inner(branch.get("States", {}), f"{path}/")
    yield from inner(definition.get("States", {}), "")


def tasks_of(definition: dict[str, Any], resources: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, state in walk(definition):
        if state.get("Resource") in resources:
            yield path, state
