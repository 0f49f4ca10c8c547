"""Small typed pieces of Amazon States Language, rendered deterministically.

Steps build `Fragment`s (their states, in order); `compiler.build` wires fragments together,
adds the failure path and renders JSON once, at the end.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stepkit.ir.names import RUN_ID, RUN_ID_PATH

State = dict[str, Any]

# Error names of the optimized integrations (Step Functions docs: "Handling errors").
ECS_THROTTLE = ["ECS.AmazonECSException", "ECS.ThrottlingException", "ECS.ServerException"]
# Only an error raised before the query starts: the query wrote nothing, a retry cannot add rows twice.
# (InternalServerException may come after a CTAS or INSERT INTO wrote files: not retried in place.)
ATHENA_THROTTLE = ["Athena.TooManyRequestsException"]
# The aws-sdk integration names errors `Sfn.<exception>`; throttling and the SDK's own failures pass.
SFN_TRANSIENT = ["Sfn.ThrottlingException", "Sfn.SfnException", "Sfn.SdkClientException"]
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


@dataclass(frozen=True)
class Retry:
    errors: tuple[str, ...]
    interval_seconds: int = 2
    max_attempts: int = 6
    backoff_rate: float = 2.0
    max_delay_seconds: int = 60
    jitter: bool = True

    def render(self) -> State:
        out: State = {
            "ErrorEquals": list(self.errors),
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
            "MaxDelaySeconds": self.max_delay_seconds,
        }
        if self.jitter:
            out["JitterStrategy"] = "FULL"
        return out


# RunTask is rate limited (20/s, Fargate launch burst 100): a fan-out of 100 needs patient retries.
# Metaflow's values: 2 s doubling to 60 s, 10 attempts, full jitter.
ECS_RETRY = Retry(tuple(ECS_THROTTLE), interval_seconds=2, max_attempts=10)
# A .sync RunTask whose response lists Failures (Fargate's "Capacity is unavailable at this time",
# a launch that found no capacity) fails the state with `AmazonECS.Unknown`, not an ECS exception
# name. Capacity comes back within minutes: 30 s doubling to 5 min, 5 tries (~13 min in all).
ECS_CAPACITY_RETRY = Retry(("AmazonECS.Unknown",), interval_seconds=30, max_attempts=5, max_delay_seconds=300)
# A batch's container that dies (host or Spot loss, OOM) is run again: its output file is
# deterministic, so a retry overwrites and never duplicates.
TASK_FAILED_RETRY = Retry(("States.TaskFailed",), interval_seconds=30, max_attempts=2, max_delay_seconds=300)
# The cleanup function only drops tables and deletes files: running it again is harmless and goes
# on where the last attempt stopped (it stops itself before its timeout), so any failure is retried.
CLEANUP_RETRY = Retry(("States.TaskFailed",), interval_seconds=5, max_attempts=3, max_delay_seconds=60)
ATHENA_RETRY = Retry(tuple(ATHENA_THROTTLE), interval_seconds=5, max_attempts=6)
LAMBDA_RETRY = Retry(tuple(LAMBDA_TRANSIENT), interval_seconds=2, max_attempts=6)
SFN_RETRY = Retry(tuple(SFN_TRANSIENT), interval_seconds=1, max_attempts=5)


def state(kind: str, comment: str | None = None, **fields: Any) -> State:
    """A state: Type, then Comment when there is one, then the fields in the order given."""
    out: State = {"Type": kind}
    if comment:
        out["Comment"] = comment
    out.update(fields)
    return out


@dataclass
class Fragment:
    """The states of one stage. The first state is the entry; `exits` get the next stage's name."""

    states: dict[str, State] = field(default_factory=dict)
    exits: list[str] = field(default_factory=list)

    @property
    def entry(self) -> str:
        return next(iter(self.states))

    def add(self, name: str, state: State) -> "Fragment":
        if name in self.states:
            raise ValueError(f"duplicate state {name}")
        self.states[name] = state
        return self

    def chain(self) -> "Fragment":
        """Link the states in order; the last one exits the fragment."""
        names = list(self.states)
        for a, b in zip(names, names[1:]):
            self.states[a]["Next"] = b
        self.exits = [names[-1]]
        return self


def escape_intrinsic(text: str) -> str:
    """Escape a literal for an intrinsic function string: ' { } and \\ take a backslash."""
    out = []
    for ch in text:
        if ch in "'{}\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def one_line(sql: str) -> str:
    """SQL on one line: `--` comments dropped, runs of white space folded, string literals kept.

    Intrinsic function strings may not hold newlines (statelint refuses them), and a comment
    would swallow the rest of a one-line query. The sql/*.sql files keep the readable form.
    """
    out: list[str] = []
    i, n, quoted = 0, len(sql), False
    while i < n:
        ch = sql[i]
        if quoted:
            out.append(ch)
            quoted = ch != "'"
        elif ch == "'":
            out.append(ch)
            quoted = True
        elif sql.startswith("--", i):
            while i < n and sql[i] != "\n":
                i += 1
            continue
        elif ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip()


def with_run_id(text: str, key: str) -> State:
    """`{key: text}`, or `{key.$: States.Format(...)}` when text holds the run id placeholder."""
    if RUN_ID not in text:
        return {key: text}
    parts = text.split(RUN_ID)
    template = "{}".join(escape_intrinsic(p) for p in parts)
    args = ", ".join([RUN_ID_PATH] * (len(parts) - 1))
    return {f"{key}.$": f"States.Format('{template}', {args})"}


def render(definition: State) -> str:
    """The one place ASL becomes text: stable key order as built, 2-space indent, final newline."""
    return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"
