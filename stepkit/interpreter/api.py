"""The types adapters and callers see."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class TaskCall:
    """One attempt of a Task state (or a Distributed Map's ItemReader / ResultWriter call)."""

    state: str                  # the state's name
    path: tuple[str, ...]       # where in the execution: ("ParallelPrediction", "7", "ParallelPredictionBatch")
    resource: str               # the Resource ARN, exactly as the definition has it
    parameters: Any             # effective Parameters (after `.$` paths and intrinsics): what AWS would send
    context: dict               # the context object as the state saw it
    timeout: float | None       # effective TimeoutSeconds after local scaling, None when there is none
    attempt: int                # 0 for the first try, then 1, 2, ... for retries
    cancelled: threading.Event  # set when the task must stop (its timeout, a failed sibling, stop())
    execution_name: str         # the (child) execution's name
    # ResultWriter calls only: one entry per child execution, shaped like AWS's result files
    # (ExecutionArn, Name, Input, Output, Status, Error, Cause, StartDate, StopDate; Input/Output are JSON text).
    results: list[dict] | None = None
    # ItemReader / ResultWriter calls only: the ReaderConfig / WriterConfig object of the definition.
    config: dict = field(default_factory=dict)


Adapter = Callable[[TaskCall], Any]
Adapters = dict[str, Adapter]


@dataclass
class Result:
    status: str                 # SUCCEEDED | FAILED | ABORTED | TIMED_OUT
    output: Any = None
    error: str | None = None
    cause: str | None = None
    failed_state: str | None = None  # "/"-joined path of the state whose failure ended the execution
