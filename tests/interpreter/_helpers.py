"""Small builders for interpreter tests: definitions as tables, adapters that record what they got."""
from __future__ import annotations

import threading
from typing import Any, Callable

from stepkit.interpreter import Execution, TaskCall, TaskFailure

LAMBDA = "arn:aws:states:::lambda:invoke"
ECS = "arn:aws:states:::ecs:runTask.sync"
ATHENA = "arn:aws:states:::athena:startQueryExecution.sync"
S3_PUT = "arn:aws:states:::s3:putObject"


def one(state: dict, **top: Any) -> dict:
    """A state machine of one state named S (made terminal)."""
    state = dict(state)
    if state["Type"] not in ("Choice", "Succeed", "Fail") and "Next" not in state:
        state["End"] = True
    return {"StartAt": "S", "States": {"S": state}, **top}


class Recorder:
    """An adapter: records every call; answers with `answer(call)` (a value, or raise TaskFailure)."""

    def __init__(self, answer: Callable[[TaskCall], Any] | Any = None):
        self.calls: list[TaskCall] = []
        self._answer = answer
        self._lock = threading.Lock()

    def __call__(self, call: TaskCall) -> Any:
        with self._lock:
            self.calls.append(call)
        if callable(self._answer):
            return self._answer(call)
        return self._answer

    def paths(self) -> list[str]:
        return sorted("/".join(c.path) for c in self.calls)


def fail_with(error: str, cause: str = "") -> Callable[[TaskCall], Any]:
    def answer(call: TaskCall) -> Any:
        raise TaskFailure(error, cause)
    return answer


def run(definition: dict, input: Any = None, adapters: dict | None = None, **options: Any):
    options.setdefault("name", "exec-1")
    options.setdefault("max_wait_seconds", 0.001)
    options.setdefault("max_retry_delay_seconds", 0.001)
    return Execution(definition, adapters or {}, input=input, **options).run()
