"""Run alerts: the stack's rule, function and topic on moto; the failed stage found in real histories; the
message made from the event Step Functions sends.

The events below follow the structure of the "Step Functions Execution Status Change" examples in the
Step Functions developer guide (EventBridge events), with the fields newer events carry (inputDetails,
error, cause, redrive*, the version and alias ARNs). Histories come from stepkit's interpreter running
the compiled predict_age definition (GetExecutionHistory's shapes, checked against moto elsewhere) and
from moto's own interpreter.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from stepkit.compiler import alerts
from stepkit.compiler import template as tpl
from stepkit.interpreter import Execution, TaskFailure
from tests.aws.conftest import REGION
from tests.aws.test_ops import executing, pipeline_machine  # noqa: F401  (fixtures: the compiled machine on moto)
from tests.aws.variants import compile_variant
from stepkit.workers.alerts import handler

ACCOUNT = "123456789012"
MACHINE = "fargate-predict-age-pipeline"
MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{MACHINE}"
STARTED = datetime(2026, 11, 27, 1, 55, tzinfo=timezone.utc)
STOPPED = datetime(2026, 11, 27, 2, 36, 12, tzinfo=timezone.utc)
GOLDEN = Path(__file__).parents[1] / "golden" / "predict_age" / "statemachine.asl.json"
FAILURE_PATH = frozenset({"CleanupOnFailure", "Failed"})


def status_change(status: str, name: str = "run-20261127-015500-ab12", machine: str = MACHINE,
                  label: str | None = None, newer: bool = True, **detail) -> dict:
    """An EventBridge event of an execution's status change. `label`: a Distributed Map child's."""
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}{'/' + label if label else ''}:{name}"
    body = {
        "executionArn": arn, "stateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}",
        "name": name, "status": status, "startDate": int(STARTED.timestamp() * 1000),
        "stopDate": None if status == "RUNNING" else int(STOPPED.timestamp() * 1000),
        "input": "{}", "output": None,
    }
    if newer:
        body.update({"inputDetails": {"included": True}, "outputDetails": None, "error": None, "cause": None,
                     "redriveCount": 0, "redriveDate": None,
                     "redriveStatus": "REDRIVABLE" if status in ("FAILED", "ABORTED", "TIMED_OUT") else "NOT_REDRIVABLE",
                     "redriveStatusReason": "Execution is redrivable",
                     "stateMachineVersionArn": f"{MACHINE_ARN}:3", "stateMachineAliasArn": f"{MACHINE_ARN}:live"})
    body.update(detail)
    return {"version": "0", "id": "6e8f2a3b-1c4d-4e5f-8a9b-0c1d2e3f4a5b",
            "detail-type": "Step Functions Execution Status Change", "source": "aws.states", "account": ACCOUNT,
            "time": STOPPED.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION, "resources": [arn], "detail": body}


# --- the failed stage, from histories of the compiled pipeline (stepkit's interpreter) --------------

ATHENA = "arn:aws:states:::athena:startQueryExecution.sync"
ECS = "arn:aws:states:::ecs:runTask.sync"
LAMBDA = "arn:aws:states:::lambda:invoke"
S3_PUT = "arn:aws:states:::s3:putObject"
LIST_EXECUTIONS = "arn:aws:states:::aws-sdk:sfn:listExecutions"


def _fails(state: str, error: str, times: int | None = None, batch: str | None = None):
    """An adapter failing `state` with `error` (`times` tries, or always); answering {} otherwise."""
    seen = {"n": 0}

    def answer(call):
        if call.state == state and (batch is None or call.path[1] == batch):
            seen["n"] += 1
            if times is None or seen["n"] <= times:
                raise TaskFailure(error, f"{state} said no (try {seen['n']})")
        return {}
    return answer


def _blocks(state: str, started: threading.Event):
    def answer(call):
        if call.state == state:
            started.set()
            call.cancelled.wait(10)
        return {}
    return answer


def _running(n: int):
    """ListExecutions of the one-run-at-a-time check: this run, and n - 1 others."""
    return lambda call: {"Executions": [{"Status": "RUNNING"}] * n}


def _definition(on_failure: bool = False) -> dict:
    if not on_failure:
        return json.loads(GOLDEN.read_text())
    # The spec's on_failure adds the failure path (CleanupOnFailure, then Failed) behind a Catch.
    from stepkit.cli import _variables
    from stepkit.compiler.build import compile_file
    from tests.aws.conftest import ENV_FILE
    from tests.aws.variants import write_variant

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = write_variant(Path(d), {"on_failure": {"delete_data": ["staging"]}})
        return compile_file(path, _variables((), str(ENV_FILE)), check_sql=False).definition


def _history(adapters: dict, stop_when: threading.Event | None = None, timeout: int | None = None,
             on_failure: bool = False):
    definition = _definition(on_failure)
    if timeout:
        definition["TimeoutSeconds"] = timeout
    base = {ATHENA: lambda c: {}, ECS: lambda c: {}, LAMBDA: lambda c: {}, S3_PUT: lambda c: None,
            LIST_EXECUTIONS: _running(1)}
    ex = Execution(definition, {**base, **adapters}, name="r", state_machine_name=MACHINE,
                   max_wait_seconds=0.001, max_retry_delay_seconds=0.001)
    if stop_when is not None:
        threading.Thread(target=lambda: (stop_when.wait(10), ex.stop("Stopped", "by hand")), daemon=True).start()
    result = ex.run()
    return result.status, list(reversed(ex.events))  # GetExecutionHistory reverseOrder=true


STAGING_STARTED = threading.Event()
STAGING_STARTED_2 = threading.Event()

HISTORIES = [
    # (case, adapters, stop_when, timeout, on_failure, status, stage, error)
    ("athena stage", {ATHENA: _fails("TrainingFeatures", "Athena.QueryFailed")}, None, None, False,
     "FAILED", "TrainingFeatures", "Athena.QueryFailed"),
    # No Fargate capacity five times, then a sixth: the retries exhausted, the stage is still Training
    # (inside a Parallel, whose other branch is then aborted).
    ("ecs retries exhausted", {ECS: _fails("Training", "AmazonECS.Unknown")}, None, None, False,
     "FAILED", "Training", "AmazonECS.Unknown"),
    # Failures that a retry got past do not count: the stage that finally failed does.
    ("retried then a later stage", {ECS: _fails("Training", "AmazonECS.Unknown", times=2),
                                    ATHENA: _fails("HumanQA", "Athena.QueryFailed")}, None, None, False,
     "FAILED", "HumanQA", "Athena.QueryFailed"),
    ("one batch of the fan-out", {ECS: _fails("ParallelPredictionBatch", "States.TaskFailed", batch="7")}, None, None,
     False, "FAILED", "ParallelPrediction", "States.ExceedToleratedFailureThreshold"),
    # The one-run-at-a-time check refuses: its Fail state is named.
    ("another run in progress", {LIST_EXECUTIONS: _running(2)}, None, None, False,
     "FAILED", "AnotherRunInProgress", ""),
    # With on_failure, the failure path's own failure (its cleanup) does not hide the stage that failed first.
    ("cleanup on failure fails too", {ATHENA: _fails("StagingFeatures", "Athena.QueryFailed"),
                                      LAMBDA: _fails("CleanupOnFailure", "Lambda.Unknown")}, None, None, True,
     "FAILED", "StagingFeatures", "Athena.QueryFailed"),
    ("stopped by hand", {ATHENA: _blocks("StagingFeatures", STAGING_STARTED)}, STAGING_STARTED, None, False,
     "ABORTED", "StagingFeatures", ""),
    ("timed out", {ATHENA: _blocks("StagingFeatures", STAGING_STARTED_2)}, None, 1, False,
     "TIMED_OUT", "StagingFeatures", ""),
]


@pytest.mark.parametrize("case, adapters, stop_when, timeout, on_failure, status, stage, error", HISTORIES,
                         ids=[h[0] for h in HISTORIES])
def test_the_failed_stage_is_found_in_the_history(case, adapters, stop_when, timeout, on_failure, status, stage,
                                                  error):
    got_status, events = _history(adapters, stop_when, timeout, on_failure)
    assert got_status == status
    found, found_error, _ = handler.failed_state(events, status, FAILURE_PATH)
    assert (found, found_error) == (stage, error)


def test_a_history_without_a_task_failure_names_where_it_was():
    """A States.Runtime error (a bad path) fails the execution with no task event."""
    events = list(reversed([
        {"id": 1, "previousEventId": 0, "type": "ExecutionStarted", "executionStartedEventDetails": {}},
        {"id": 2, "previousEventId": 1, "type": "PassStateEntered", "stateEnteredEventDetails": {"name": "Ids"}},
        {"id": 3, "previousEventId": 2, "type": "ExecutionFailed",
         "executionFailedEventDetails": {"error": "States.Runtime", "cause": "Invalid path '$.x'"}}]))
    assert handler.failed_state(events, "FAILED")[0] == "Ids"


# --- the message ------------------------------------------------------------------------------

def test_the_failure_message_names_everything_needed():
    event = status_change("FAILED", error="AmazonECS.Unknown", cause="Capacity is unavailable at this time")
    subject, body = handler.message(event["detail"], "predict-age", REGION, "Training", "", "")
    assert subject == "predict-age: run run-20261127-015500-ab12 failed at Training"
    assert body.splitlines() == [
        "Pipeline:   predict-age (state machine fargate-predict-age-pipeline, version 3)",
        "Run:        run-20261127-015500-ab12",
        "Status:     FAILED after 41m12s (started 2026-11-27 01:55:00 UTC)",
        "Stage:      Training",
        "Error:      AmazonECS.Unknown",
        "Cause:      Capacity is unavailable at this time",
        "",
        "Resume it from the stage that failed (stages that succeeded are not run again; within 14 days of the failure):",
        "  stepkit redrive run-20261127-015500-ab12",
        "Its timeline and logs:",
        "  stepkit status run-20261127-015500-ab12 --pipeline predict-age",
        "  stepkit logs Training --pipeline predict-age",
        "Console:    https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/"
        "arn:aws:states:us-east-1:123456789012:execution:fargate-predict-age-pipeline:run-20261127-015500-ab12",
    ]


@pytest.mark.parametrize("status, stage, subject, lines", [
    ("TIMED_OUT", "Training", "predict-age: run r1 timed out at Training", ["Status:     TIMED_OUT after 41m12s"]),
    ("ABORTED", "ParallelPrediction", "predict-age: run r1 was stopped at ParallelPrediction", ["  stepkit redrive r1"]),
    ("SUCCEEDED", None, "predict-age: run r1 succeeded", ["  stepkit status r1 --pipeline predict-age"]),
])
def test_other_ends(status, stage, subject, lines):
    got_subject, body = handler.message(status_change(status, name="r1")["detail"], "predict-age", REGION, stage, "", "")
    assert got_subject == subject
    assert all(any(b.startswith(line) for b in body.splitlines()) for line in lines)
    assert ("stepkit redrive" in body) is (status != "SUCCEEDED")


def test_a_long_cause_and_subject_are_cut():
    event = status_change("FAILED", name="r" * 80, error="States.TaskFailed", cause="x" * 5000)
    subject, body = handler.message(event["detail"], "predict-age", REGION, "ParallelPrediction", "", "")
    assert len(subject) == handler.SUBJECT_MAX and subject.endswith("...")
    cause = next(line for line in body.splitlines() if line.startswith("Cause:"))
    assert cause.endswith("(3500 more characters: see `stepkit status " + "r" * 80 + "`)")


# --- the stack: template (moto's CloudFormation creates these, checked below) --------------------

def test_the_rule_takes_the_ends_of_top_level_runs(tmp_path, variables):
    t = tpl.build(compile_variant(tmp_path, variables, {"alerts": {"email": "ops@example.com", "on_success": True},
                                                        "on_failure": {"delete_data": ["staging"]}}))
    pattern = t["Resources"]["RunAlertRule"]["Properties"]["EventPattern"]
    assert pattern == {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"],
                       "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED"], "executionArn": [
                           {"prefix": {"Fn::Sub": f"arn:aws:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:"
                                                  f"{MACHINE}:"}}]}}
    assert t["Resources"]["RunAlertEmail"]["Properties"] == {
        "TopicArn": {"Ref": "RunAlertTopic"}, "Protocol": "email", "Endpoint": "ops@example.com"}
    env = t["Resources"]["RunAlertFunction"]["Properties"]["Environment"]["Variables"]
    assert env == {"STEPKIT_PIPELINE": "predict-age", "STEPKIT_TOPIC_ARN": {"Ref": "RunAlertTopic"},
                   "STEPKIT_FAILURE_PATH": "CleanupOnFailure,Failed"}
    statements = t["Resources"]["RunAlertRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert statements[0]["Resource"] == {
        "Fn::Sub": f"arn:aws:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{MACHINE}:*"}
    assert statements[1] == {"Sid": "Publish", "Effect": "Allow", "Action": "sns:Publish",
                             "Resource": {"Ref": "RunAlertTopic"}}


def test_no_email_no_subscription(artifacts):
    assert "RunAlertEmail" not in tpl.build(artifacts)["Resources"]


@pytest.fixture
def deployed(aws):
    from tests.aws.test_deploy import deploy

    code, out = deploy()
    assert code == 0, out
    return aws


EVENTS = [
    # (case, event, let through by the deployed rule, by the rule with alerts.on_success)
    ("a failed run", status_change("FAILED"), True, True),
    ("a timed-out run", status_change("TIMED_OUT"), True, True),
    ("a stopped run", status_change("ABORTED"), True, True),
    ("the older event shape", status_change("FAILED", newer=False), True, True),
    ("a run starting", status_change("RUNNING"), False, False),
    ("a success", status_change("SUCCEEDED"), False, True),
    ("a fan-out child", status_change("FAILED", label="ParallelPrediction", name="8d1e5f2a-0b3c"), False, False),
    ("another machine", status_change("FAILED", machine="someone-elses-pipeline"), False, False),
    ("a machine whose name starts the same", status_change("FAILED", machine=MACHINE + "-v2"), False, False),
]


def test_the_deployed_rule_matches_exactly_the_ends_it_should(deployed):
    """The deployed rule's pattern, verbatim, on a bus of its own with a queue as target (and the on_success
    pattern beside it): every event is put on that bus, and the queue shows which ones the pattern let
    through, by moto's own matching (prefix included). moto's TestEventPattern is a stub, it would run the
    rule's Lambda target in Docker, and on the default bus the stack's schedule rule breaks its PutEvents."""
    events, sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
    deployed_pattern = events.describe_rule(Name="ai-agent-predict-age-run-alerts")["EventPattern"]
    events.create_event_bus(Name="probe")
    queues = {}
    for on_success, pattern in ((False, deployed_pattern),
                                (True, json.dumps(alerts.event_pattern(MACHINE_ARN, True)))):
        rule = f"alerts-{on_success}"
        events.put_rule(Name=rule, EventBusName="probe", EventPattern=pattern)
        url = sqs.create_queue(QueueName=f"q-{on_success}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_targets(Rule=rule, EventBusName="probe", Targets=[{"Id": "queue", "Arn": arn}])
        queues[on_success] = url
    for i, (case, event, _, _) in enumerate(EVENTS):
        event = json.loads(json.dumps(event))
        event["detail"]["name"] = str(i)  # which event came through
        events.put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"], "EventBusName": "probe",
                                    "Detail": json.dumps(event["detail"]), "Resources": event["resources"]}])
    for on_success, url in queues.items():
        got = set()
        while True:
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                break
            got |= {EVENTS[int(json.loads(m["Body"])["detail"]["name"])][0] for m in batch}
        expected = {case for case, _, plain, with_success in EVENTS if (with_success if on_success else plain)}
        assert got == expected, on_success


def test_the_stack_wires_rule_function_and_topic(deployed):
    events = boto3.client("events", region_name=REGION)
    target = events.list_targets_by_rule(Rule="ai-agent-predict-age-run-alerts")["Targets"][0]
    fn = boto3.client("lambda", region_name=REGION).get_function_configuration(FunctionName="ai-agent-predict-age-alerts")
    assert target["Arn"] == fn["FunctionArn"] and fn["Handler"] == "stepkit.workers.alerts.handler.handler"
    topics = [t["TopicArn"] for t in boto3.client("sns", region_name=REGION).list_topics()["Topics"]]
    assert fn["Environment"]["Variables"]["STEPKIT_TOPIC_ARN"] in topics
    assert fn["Environment"]["Variables"]["STEPKIT_TOPIC_ARN"].endswith(":ai-agent-predict-age-run-alerts")


# --- end to end on moto: a run that failed, the event, the message on the topic ---------------------

@pytest.fixture
def inbox(aws):
    """The alert topic with a queue subscribed to it (what an email subscription receives)."""
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="ai-agent-predict-age-run-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def read() -> list[dict]:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]
    return topic, read


def test_a_failed_run_on_moto_reaches_the_topic(pipeline_machine, inbox, monkeypatch):
    from tests.aws.conftest import ENV_FILE
    from tests.aws.test_ops import cli, wait_done

    topic, read = inbox
    code, _ = cli("run", str(pipeline_machine), "--env-file", str(ENV_FILE), "--name", "run-a")
    assert code == 0
    done = wait_done(f"{MACHINE_ARN.replace(':stateMachine:', ':execution:')}:run-a")
    assert done["status"] == "FAILED"
    monkeypatch.setenv(handler.PIPELINE_ENV, "predict-age")
    monkeypatch.setenv(handler.TOPIC_ENV, topic)
    monkeypatch.setenv(handler.IGNORE_ENV, "CleanupOnFailure,Failed")
    # The older event shape: no error or cause in it; the function reads them from DescribeExecution.
    out = handler.handler(status_change("FAILED", name="run-a", newer=False))
    # moto's interpreter fails the one-run-at-a-time check (its aws-sdk integration reads camelCase
    # parameters): that state is named. (moto also ignores reverseOrder: the function reads the whole history.)
    assert out == {"subject": "predict-age: run run-a failed at CheckOtherRuns", "stage": "CheckOtherRuns"}
    (msg,) = read()
    assert msg["Subject"] == "predict-age: run run-a failed at CheckOtherRuns"
    lines = msg["Message"].splitlines()
    assert "Stage:      CheckOtherRuns" in lines and "  stepkit redrive run-a" in lines
    assert next(line for line in lines if line.startswith("Error:")) == f"Error:      {done['error']}"


def test_a_child_execution_sends_nothing(inbox, monkeypatch):
    topic, read = inbox
    assert handler.run(status_change("FAILED", label="ParallelPrediction"), None, None, "predict-age", topic,
                       frozenset(), REGION) is None
    assert read() == []
