"""Run-alerts Lambda: turns a "Step Functions Execution Status Change" event into one message on SNS.

EventBridge's event carries the execution's name, status, error and cause, but not the state that
failed. An input transformer can only rearrange the event's own fields, and a Fail state's cause
names nothing either: without a Catch (a Catch makes a redrive re-run only the Fail state, so stages
have none) the execution fails with the task's own error, and a stopped or timed-out run passes no
Fail state at all. The execution's history is the one place that names the state: this function
reads it from the newest event back (GetExecutionHistory, reverse order) until it finds the failure,
and publishes the message. It imports only the standard library and boto3 (the Lambda runtime's).
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

PIPELINE_ENV = "STEPKIT_PIPELINE"
TOPIC_ENV = "STEPKIT_TOPIC_ARN"
# States of the failure path (cleanup, then the Fail state): the failed stage is the one before them.
IGNORE_ENV = "STEPKIT_FAILURE_PATH"
# History events that end an attempt of a state in failure (retried or not).
LEAF_FAILURES = {
    "TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskStartTimedOut", "TaskSubmitFailed",
    "LambdaFunctionFailed", "LambdaFunctionTimedOut", "LambdaFunctionStartFailed", "LambdaFunctionScheduleFailed",
    "ActivityFailed", "ActivityTimedOut", "ActivityScheduleFailed", "MapRunFailed", "MapRunAborted",
    "EvaluationFailed",
}
CAUSE_MAX = 1500  # characters of the cause in the message (an ECS cause is a whole DescribeTasks response)
SUBJECT_MAX = 100  # SNS refuses a longer subject


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def failed_state(events: Iterable[dict[str, Any]], status: str, ignore: frozenset[str] = frozenset()
                 ) -> tuple[str | None, str, str]:
    """(state, error, cause) from a history read newest first.

    FAILED: the newest failure of a state outside `ignore`, followed back through previousEventId to the
    state it belongs to (a Task's failure, a Map Run's, a Fail state reached directly). ABORTED or
    TIMED_OUT (or a failure no task reported, States.Runtime): the newest state entered and not exited
    (the innermost, inside a Parallel or Map)."""
    exited: set[str] = set()
    open_state: str | None = None
    wanted: int | None = None  # previousEventId chain of the failure being followed back
    error = cause = ""
    for e in events:
        kind = e.get("type", "")
        if wanted is not None:
            if e.get("id") != wanted:
                continue
            if kind.endswith("StateEntered"):
                name = e["stateEnteredEventDetails"]["name"]
                if name not in ignore:
                    return name, error, cause
                wanted, error, cause = None, "", ""  # the failure path's own failure: keep looking
                continue
            wanted = e.get("previousEventId")
            continue
        if kind.endswith("StateExited"):
            exited.add(e["stateExitedEventDetails"]["name"])
        elif status == "FAILED" and kind in LEAF_FAILURES:
            d = _details(e)
            wanted, error, cause = e.get("previousEventId"), d.get("error", ""), d.get("cause", "")
        elif kind == "FailStateEntered":
            name = e["stateEnteredEventDetails"]["name"]
            if status == "FAILED" and name not in ignore:
                return name, "", ""
        elif kind.endswith("StateEntered"):
            name = e["stateEnteredEventDetails"]["name"]
            if name not in exited and name not in ignore:
                if status != "FAILED":
                    return name, "", ""
                open_state = open_state or name  # a failure with no task event (States.Runtime): where it was
    return open_state, error, cause


def history(sfn: Any, execution_arn: str) -> Iterator[dict[str, Any]]:
    """The execution's events, newest first, a page at a time (the failure is usually on the first)."""
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "reverseOrder": True, "maxResults": 1000}
    pages = []
    while True:
        page = sfn.get_execution_history(**kwargs)
        events = page.get("events", [])
        if len(events) > 1 and events[0]["id"] < events[-1]["id"] or pages:
            pages.append(events)  # oldest first: an endpoint that ignores reverseOrder (moto does); read all
        else:
            yield from events
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    yield from sorted((e for events in pages for e in events), key=lambda e: -e["id"])


def _when(value: Any) -> datetime | None:
    """EventBridge gives epoch milliseconds; DescribeExecution gives datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, timezone.utc)
    return None


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _version(arn: str | None) -> str:
    tail = (arn or "").rsplit(":", 1)[-1]
    return f"version {tail}" if tail.isdigit() and (arn or "").count(":") >= 7 else "latest revision"


def message(detail: dict[str, Any], pipeline: str, region: str, stage: str | None, error: str, cause: str
            ) -> tuple[str, str]:
    """(subject, body) of the alert. `detail` is the event's detail (DescribeExecution's shape)."""
    name, status, arn = detail["name"], detail["status"], detail["executionArn"]
    machine = arn.split(":")[6]
    started, stopped = _when(detail.get("startDate")), _when(detail.get("stopDate"))
    took = f" after {_duration((stopped - started).total_seconds())}" if started and stopped else ""
    verb = {"FAILED": "failed", "TIMED_OUT": "timed out", "ABORTED": "was stopped", "SUCCEEDED": "succeeded"}.get(
        status, status.lower())
    at = f" at {stage}" if stage and status != "SUCCEEDED" else ""
    subject = f"{pipeline}: run {name} {verb}{at}"
    if len(subject) > SUBJECT_MAX:
        subject = subject[:SUBJECT_MAX - 3] + "..."
    error = detail.get("error") or error
    cause = detail.get("cause") or cause
    if len(cause) > CAUSE_MAX:
        cause = cause[:CAUSE_MAX] + f" ... ({len(cause) - CAUSE_MAX} more characters: see `stepkit status {name}`)"
    console = (f"https://{region}.console.aws.amazon.com/states/home?region={region}"
               f"#/v2/executions/details/{arn}")
    lines = [
        f"Pipeline:   {pipeline} (state machine {machine}, {_version(detail.get('stateMachineVersionArn'))})",
        f"Run:        {name}",
        f"Status:     {status}{took}" + (f" (started {started:%Y-%m-%d %H:%M:%S} UTC)" if started else ""),
    ]
    if status != "SUCCEEDED":
        lines += [f"Stage:      {stage or 'unknown (see the history)'}",
                  f"Error:      {error or '-'}",
                  f"Cause:      {cause or '-'}",
                  "",
                  "Resume it from the stage that failed (stages that succeeded are not run again; within 14 days "
                  "of the failure):",
                  f"  stepkit redrive {name}",
                  "Its timeline and logs:",
                  f"  stepkit status {name} --pipeline {pipeline}"]
        if stage:
            lines.append(f"  stepkit logs {stage} --pipeline {pipeline}")
    else:
        lines += ["", "Its timeline:", f"  stepkit status {name} --pipeline {pipeline}"]
    lines += [f"Console:    {console}"]
    return subject, "\n".join(lines) + "\n"


def is_child(execution_arn: str) -> bool:
    """A Distributed Map's child execution (execution:MACHINE/LABEL:ID): its parent's alert covers it."""
    return "/" in execution_arn.split(":")[6]


def run(event: dict[str, Any], sfn: Any, sns: Any, pipeline: str, topic_arn: str, ignore: frozenset[str],
        region: str) -> dict[str, Any] | None:
    detail = dict(event["detail"])
    arn = detail["executionArn"]
    if is_child(arn):
        return None
    if not detail.get("error") and detail["status"] != "SUCCEEDED":
        # Events from before Step Functions added error/cause to them: the execution has them.
        described = sfn.describe_execution(executionArn=arn)
        for key in ("error", "cause", "stateMachineVersionArn", "stateMachineAliasArn"):
            if described.get(key) and not detail.get(key):
                detail[key] = described[key]
    stage, error, cause = (None, "", "")
    if detail["status"] != "SUCCEEDED":
        try:
            stage, error, cause = failed_state(history(sfn, arn), detail["status"], ignore)
        except Exception as e:  # the alert goes out even when the history cannot be read
            print({"history_unreadable": str(e)})
    subject, body = message(detail, pipeline, region, stage, error, cause)
    sns.publish(TopicArn=topic_arn, Subject=subject, Message=body)
    return {"subject": subject, "stage": stage}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any] | None:
    import boto3

    ignore = frozenset(filter(None, os.environ.get(IGNORE_ENV, "").split(",")))
    region = event.get("region") or os.environ.get("AWS_REGION", "")
    result = run(event, boto3.client("stepfunctions"), boto3.client("sns"), os.environ[PIPELINE_ENV],
                 os.environ[TOPIC_ENV], ignore, region)
    print(json.dumps({"alert": result}))
    return result
