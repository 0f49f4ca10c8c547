"""Error names of the Amazon States Language and the rules for matching them in Retry and Catch.

AWS's rules, as the Step Functions developer guide ("Error handling") states them:
- `States.ALL` matches every error name except `States.DataLimitExceeded` and `States.Runtime`,
  which no Retry or Catch can handle: they always end the execution.
- `States.TaskFailed` matches every error name except `States.Timeout` (and the two above).
- Any other name matches only itself (names are case sensitive).
"""
from __future__ import annotations

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RUNTIME = "States.Runtime"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
PERMISSIONS = "States.Permissions"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
BRANCH_FAILED = "States.BranchFailed"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"

# Errors no Retry or Catch handles, not even one that names them.
UNCATCHABLE = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})


class StatesError(Exception):
    """A state's failure: an error name and a cause, as Step Functions reports them."""

    def __init__(self, error: str, cause: str = ""):
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


class TaskFailure(StatesError):
    """Raised by an adapter: the task failed with this error name and cause."""


class DefinitionError(ValueError):
    """The definition uses something the interpreter refuses; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def matches(pattern: str, error: str) -> bool:
    if error in UNCATCHABLE:
        return False
    if pattern == ALL:
        return True
    if pattern == TASK_FAILED:
        return error != TIMEOUT
    return pattern == error


def first_match(rules: list[dict], error: str) -> int | None:
    """Index of the first Retry/Catch rule whose ErrorEquals matches `error`, or None."""
    for i, rule in enumerate(rules):
        if any(matches(p, error) for p in rule.get("ErrorEquals", ())):
            return i
    return None
