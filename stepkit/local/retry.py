"""The compiled `Retry` of a state, applied locally.

Locally every failure of a task (an exception, a worker process that died) is
`States.TaskFailed`, as a failed ECS task or Lambda is on AWS; the throttling errors the
compiled retriers also name never happen on one machine. Waits between attempts are
shortened to at most `LOCAL_MAX_DELAY` seconds (the run says so in its output).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASK_FAILED = "States.TaskFailed"
LOCAL_MAX_DELAY = 0.2


@dataclass
class RetryPolicy:
    rules: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, state: dict[str, Any] | None) -> "RetryPolicy":
        return cls(list((state or {}).get("Retry", [])))

    def _rule(self, error: str) -> int | None:
        # As in ASL: the first retrier whose ErrorEquals names the error (or States.ALL) applies.
        for i, rule in enumerate(self.rules):
            names = rule.get("ErrorEquals", [])
            if error in names or "States.ALL" in names:
                return i
        return None

    def max_attempts(self, error: str = TASK_FAILED) -> int:
        """Total attempts (first try included) for an error that keeps happening."""
        i = self._rule(error)
        return 1 + (int(self.rules[i].get("MaxAttempts", 3)) if i is not None else 0)


@dataclass
class Attempts:
    """Counts retries per retrier for one unit of work (a stage, or one batch of a fan-out)."""

    policy: RetryPolicy
    used: dict[int, int] = field(default_factory=dict)
    total: int = 0

    def start(self) -> int:
        self.total += 1
        return self.total

    def retry_delay(self, error: str = TASK_FAILED) -> float | None:
        """Seconds to wait before the next attempt (AWS's schedule, shortened); None: give up."""
        i = self.policy._rule(error)
        if i is None:
            return None
        rule = self.policy.rules[i]
        n = self.used.get(i, 0)
        if n >= int(rule.get("MaxAttempts", 3)):
            return None
        self.used[i] = n + 1
        aws = float(rule.get("IntervalSeconds", 1)) * float(rule.get("BackoffRate", 2.0)) ** n
        aws = min(aws, float(rule.get("MaxDelaySeconds", aws)))
        return min(aws, LOCAL_MAX_DELAY)
