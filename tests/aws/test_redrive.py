"""`stepkit redrive` and `stepkit run --from` against moto's Step Functions interpreter.

moto's interpreter runs the compiled definition's first states, then fails the one-run-at-a-time
check (tests/aws/test_ops.py says why): a real failed execution with a real history. moto has no
RedriveExecution; the redrive itself is checked as far as the call, and continuing a run in a new
execution (StartExecution) all the way.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from stepkit.aws import redrive
from stepkit.aws.session import Session
from stepkit.compiler import recovery
from stepkit.errors import StepkitError
from tests.aws.conftest import ENV_FILE, REGION
from tests.aws.test_ops import INLINE, MACHINE_ARN, TAGS, cli, executing, pipeline_machine, wait_done  # noqa: F401
from tests.aws.variants import compile_variant, write_variant

EXECUTION = MACHINE_ARN.replace(":stateMachine:", ":execution:")


@pytest.fixture
def failed_run(pipeline_machine):  # noqa: F811 - the fixture imported above
    code, out = cli("run", str(pipeline_machine), "--env-file", str(ENV_FILE), "--name", "run-a")
    assert code == 0, out
    assert wait_done(f"{EXECUTION}:run-a")["status"] == "FAILED"
    return pipeline_machine


def sfn():
    return boto3.client("stepfunctions", region_name=REGION)


def test_a_failed_start_state_is_redriven(failed_run):
    code, out = cli("redrive", "--dry-run")
    assert code == 0, out
    assert out.splitlines()[:2] == ["run run-a: 1 execution(s); the last, run-a, FAILED",
                                    "redrive run-a: every unfinished state can run again as it is: CheckOtherRuns"]
    code, out = cli("redrive", "run-a")
    # moto lacks RedriveExecution: the call is made, and its failure is one line naming the action.
    assert code == 1 and out.splitlines()[-1].startswith("states:RedriveExecution: "), out


def test_past_aws_redrive_window_the_run_continues_in_a_new_execution(failed_run):
    session = Session(region=REGION)
    stopped = sfn().describe_execution(executionArn=f"{EXECUTION}:run-a")["stopDate"]
    p = redrive.plan(session, "run-a", now=stopped + timedelta(days=15))
    assert p.decision.kind == "continue" and "more than 14 days ago" in p.note
    assert redrive.act(session, p, echo=lambda line: None) == "run-a-c2"
    started = sfn().describe_execution(executionArn=f"{EXECUTION}:run-a-c2")
    assert json.loads(started["input"]) == {"done": {}, "run": {"id": "run-a"}}
    wait_done(started["executionArn"])
    # The run now has two executions; its latest is the one a redrive looks at.
    run = redrive.find_run(session, redrive.machine(session), "run-a")
    assert [e["name"] for e in run.executions] == ["run-a", "run-a-c2"]
    assert recovery.run_id(run.histories[1], "run-a-c2") == "run-a"


def test_a_running_run_is_neither_redriven_nor_started_from(aws, tmp_path, variables):
    from stepkit.ir import asl

    # moto without its interpreter: an execution stays RUNNING until stopped.
    a = compile_variant(tmp_path, variables, INLINE)
    sfn().create_state_machine(name="fargate-predict-age-pipeline", definition=asl.render(a.definition),
                               roleArn="arn:aws:iam::123456789012:role/r", tags=TAGS)
    sfn().start_execution(stateMachineArn=MACHINE_ARN, name="run-b")
    for args in (["redrive"], ["run", str(write_variant(tmp_path, INLINE)), "--env-file", str(ENV_FILE),
                               "--from", "PreCleanup"]):
        code, out = cli(*args)
        assert code == 1 and "run run-b is still running" in out, out
    assert [e["name"] for e in sfn().list_executions(stateMachineArn=MACHINE_ARN)["executions"]] == ["run-b"]


@pytest.mark.parametrize("args, line", [
    (["--from", "PreCleanup"], "started run-a-c2"),
    (["--from", "Training"], "--from Training: run run-a has not finished PreCleanup, "
                             "StagingFeatures, TrainingFeatures, TrainingTargets, which come before Training: start "
                             "from PreCleanup (or resume the run)"),
    (["--from", "Nope"], "--from Nope: no stage 'Nope' to start from (stages: PreCleanup,"),
    (["--from", "PreCleanup", "--run", "run-0"], "--run run-0: the latest run of "
                                                 "fargate-predict-age-pipeline is run-a"),
])
def test_run_from(failed_run, args, line):
    code, out = cli("run", str(failed_run), "--env-file", str(ENV_FILE), *args)
    assert any(l.startswith(line) for l in out.splitlines()), out
    names = [e["name"] for e in sfn().list_executions(stateMachineArn=MACHINE_ARN)["executions"]]
    assert names == (["run-a-c2", "run-a"] if code == 0 else ["run-a"])
    if code == 0:
        given = json.loads(sfn().describe_execution(executionArn=f"{EXECUTION}:run-a-c2")["input"])
        assert given == {"run": {"id": "run-a"}, "done": {}}


def _later_run(name: str, past_the_start: bool) -> None:
    """Another run started after run-a. moto's interpreter stops at CheckOtherRuns (above); with that check
    answered by a Pass, the run goes on into PreCleanup, which drops every run's tables (moto then fails the
    cleanup function's call: no Lambda runs here)."""
    if past_the_start:
        d = json.loads(sfn().describe_state_machine(stateMachineArn=MACHINE_ARN)["definition"])
        d["States"]["CheckOtherRuns"] = {"Type": "Pass", "Result": {"running": 1}, "ResultPath": "$.others",
                                         "Next": "OneRunAtATime"}
        sfn().update_state_machine(stateMachineArn=MACHINE_ARN, definition=json.dumps(d))
    sfn().start_execution(stateMachineArn=MACHINE_ARN, name=name)
    assert wait_done(f"{EXECUTION}:{name}")["status"] == "FAILED"


@pytest.mark.parametrize("past_the_start, args, code, line", [
    # run-b's PreCleanup dropped run-a's tables, and run-b's own now hold their names: run-a cannot go on.
    (True, ["run-a"], 1, "run run-a cannot go on: run run-b started after it (execution run-b) and its first "
                         "clean-up dropped the tables of the runs before it"),
    (True, [], 0, "redrive run-b: every unfinished state can run again as it is: PreCleanup"),
    # run-b stopped in the start states (one run at a time): it touched no table.
    (False, ["run-a"], 0, "redrive run-a: every unfinished state can run again as it is: CheckOtherRuns"),
])
def test_only_the_latest_run_that_got_past_the_start_goes_on(failed_run, past_the_start, args, code, line):
    _later_run("run-b", past_the_start)
    got, out = cli("redrive", *args, "--dry-run")
    assert got == code and line in out.splitlines()[-1], out


OTHER = "arn:aws:states:us-east-1:123456789012:stateMachine:other"


@pytest.mark.parametrize("execution, line", [
    # An ARN of another state machine's execution: not this pipeline's run, whatever the ARN says.
    (OTHER.replace(":stateMachine:", ":execution:") + ":o-1",
     "execution o-1 is one of state machine other, not of fargate-predict-age-pipeline"),
    ("nope", "states:DescribeExecution: "),
])
def test_an_execution_not_of_this_machine_is_refused(failed_run, execution, line):
    sfn().create_state_machine(name="other", roleArn="arn:aws:iam::123456789012:role/r", definition=json.dumps(
        {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Boom"}}}))
    sfn().start_execution(stateMachineArn=OTHER, name="o-1")
    assert wait_done(f"{OTHER.replace(':stateMachine:', ':execution:')}:o-1")["status"] == "FAILED"
    code, out = cli("redrive", execution, "--dry-run")
    assert code == 1 and line in out.splitlines()[-1], out
    assert [e["name"] for e in sfn().list_executions(stateMachineArn=OTHER)["executions"]] == ["o-1"]


def test_a_run_whose_id_the_machine_refuses_cannot_go_on(pipeline_machine):  # noqa: F811
    # Step Functions takes a quote in an execution name; the run id reaches SQL strings, so CheckRunId does not.
    sfn().start_execution(stateMachineArn=MACHINE_ARN, name="it's")
    assert wait_done(f"{EXECUTION}:it's")["status"] == "FAILED"
    code, out = cli("redrive", "--dry-run")
    assert code == 1 and out.splitlines()[-1].startswith(
        "run it's: CheckRunId refuses its run id (it names the run's tables and folders): no execution of it can "
        "go on; start a new run"), out


def _continue(session, name: str) -> str:
    """Continue the run of execution `name` in a new execution, as past AWS's redrive window."""
    stopped = sfn().describe_execution(executionArn=f"{EXECUTION}:{name}")["stopDate"]
    p = redrive.plan(session, name, now=stopped + timedelta(days=15))
    started = redrive.act(session, p, echo=lambda line: None)
    assert wait_done(f"{EXECUTION}:{started}")["status"] == "FAILED"
    return started


LONG = "nightly-scoring-of-every-profile-for-the-quarterly-age-report-2025-q3-2025-10-0"  # 79 characters


@pytest.mark.parametrize("day", ["1", "2"])
def test_runs_named_with_80_characters_are_continued_under_names_of_their_own(pipeline_machine, day):  # noqa: F811
    """Two runs whose 80-character names differ only at the end, each continued twice: every new execution
    has a name of its own, at most 80 characters, and belongs to its run (run --from looks up the latest)."""
    session = Session(region=REGION)
    for d in ("1", "2"):
        sfn().start_execution(stateMachineArn=MACHINE_ARN, name=LONG + d)
        assert wait_done(f"{EXECUTION}:{LONG + d}")["status"] == "FAILED"
    first = _continue(session, LONG + day)
    second = _continue(session, first)
    other = "2" if day == "1" else "1"
    third = _continue(session, LONG + other)
    names = [first, second, third]
    assert len(set(names)) == 3 and all(len(n) <= 80 for n in names), names
    for name, run in zip(names, [LONG + day, LONG + day, LONG + other]):
        assert recovery.run_id(redrive.history(sfn(), f"{EXECUTION}:{name}"), name) == run
    assert [e["name"] for e in redrive.find_run(session, redrive.machine(session), second).executions] == \
        [LONG + day, first, second]


@pytest.mark.parametrize("retention, days_after_stop, kind, message", [
    (None, 1, "redrive", ""),  # no lifecycle rules: nothing expires
    (None, 30, "continue", ""),
    ({}, 1, "redrive", ""),
    # deploy's rules expire the files of the tables a clean-up deletes 15 days after they were written: past that,
    # the stages the run finished have lost their files, and skipping them would read empty tables.
    ({}, 15, None, "run run-a started 15 days ago, and the bucket's lifecycle rule for s3://stepkit-example-bucket/"
                   "predict-age/tables/predict_age_full_evaluation_features_378m/ expires files 15 days after they "
                   "were written: the tables and models of the stages it finished may be gone; start a new run"),
    ({"failed_run_days": 60}, 30, "continue", ""),
    # runs/ (the models the scoring stages read), when retention.runs_days expires it
    ({"failed_run_days": 60, "runs_days": 20}, 30, None,
     "the bucket's lifecycle rule for s3://stepkit-example-bucket/predict-age/runs/ expires files 20 days"),
])
def test_a_run_whose_files_expired_does_not_go_on(failed_run, tmp_path, variables, retention, days_after_stop, kind,
                                                  message):
    from stepkit.aws import lifecycle
    from stepkit.compiler.load import load_pipeline

    session = Session(region=REGION)
    if retention is not None:
        changes = {f"retention.{k}": v for k, v in retention.items()}
        pipeline, _ = load_pipeline(write_variant(tmp_path, changes, "r.yaml"), variables)
        s3 = session.client("s3")
        lifecycle.apply(s3, pipeline, lifecycle.plan(s3, pipeline))
    stopped = sfn().describe_execution(executionArn=f"{EXECUTION}:run-a")["stopDate"]
    now = stopped + timedelta(days=days_after_stop, minutes=1)
    if kind is None:
        with pytest.raises(StepkitError, match=message.replace(".", r"\.")):
            redrive.plan(session, "run-a", now=now)
    else:
        assert redrive.plan(session, "run-a", now=now).decision.kind == kind


V = "arn:aws:states:us-east-1:123456789012:stateMachine:fargate-predict-age-pipeline:"
NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)


@pytest.mark.parametrize("last, live, why", [
    ({"name": "r", "stopDate": NOW - timedelta(days=1)}, None, ""),
    ({"name": "r", "stopDate": NOW - timedelta(days=1), "stateMachineVersionArn": V + "3"}, V + "3", ""),
    ({"name": "r", "stopDate": NOW - timedelta(days=1), "stateMachineVersionArn": V + "3"}, V + "4",
     "r ran version 3, and version 4 is live now: a redrive would run the old definition"),
    ({"name": "r", "stopDate": NOW - timedelta(days=15)}, None,
     "r stopped more than 14 days ago, past the time AWS redrives an execution"),
    ({"name": "r", "redriveStatus": "NOT_REDRIVABLE", "redriveStatusReason": "Execution history event limit exceeded"},
     None, "AWS will not redrive r: Execution history event limit exceeded"),
])
def test_when_a_redrivable_run_goes_on_in_a_new_execution_instead(last, live, why):
    assert redrive.not_redriven(last, live, NOW) == why
