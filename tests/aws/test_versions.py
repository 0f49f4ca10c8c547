"""Versions and the alias `live`: deploy says which version is live, `rollback` moves the alias, runs show
the version they ran, and `stepkit run` names the run in the way.

moto's CloudFormation skips AWS::StepFunctions::StateMachineVersion/Alias (test_template.py pins them),
so these tests publish versions and make the alias through the Step Functions API, as the stack does on
AWS. moto cannot start an execution through an alias or a version ARN (StateMachineDoesNotExist / a 500)
and records no version on an execution: the start target and the run's version label are tested on
DescribeExecution's documented shape instead.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest

from stepkit.aws import ops, versions
from tests.aws.conftest import ENV_FILE, PIPELINE, REGION
from tests.aws.test_ops import MACHINE_ARN, TAGS, cli

ROLE = "arn:aws:iam::123456789012:role/ai-agent-predict-age-sfn"


def definition(comment: str) -> str:
    return json.dumps({"Comment": comment, "StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 600,
                                                                                   "End": True}}})


@pytest.fixture
def three_versions(aws):
    """The machine as three deploys leave it: versions 1-3, the alias on 3."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.create_state_machine(name="fargate-predict-age-pipeline", definition=definition("v1"), roleArn=ROLE,
                             tags=TAGS, publish=True)
    for n in (2, 3):
        sfn.update_state_machine(stateMachineArn=MACHINE_ARN, definition=definition(f"v{n}"), publish=True)
    sfn.create_state_machine_alias(name="live", routingConfiguration=[
        {"stateMachineVersionArn": f"{MACHINE_ARN}:3", "weight": 100}])
    return sfn


def live_version(sfn) -> str:
    return sfn.describe_state_machine_alias(stateMachineAliasArn=f"{MACHINE_ARN}:live")["routingConfiguration"][0][
        "stateMachineVersionArn"]


def test_rollback_moves_the_alias_one_version_at_a_time(three_versions):
    sfn = three_versions
    assert cli("rollback") == (0, "fargate-predict-age-pipeline: alias live moved from version 3 to version 2; "
                                  "new runs (the schedule, stepkit run) start version 2\n")
    assert live_version(sfn) == f"{MACHINE_ARN}:2"
    assert cli("rollback")[0] == 0 and live_version(sfn) == f"{MACHINE_ARN}:1"
    code, out = cli("rollback")
    assert code == 1 and out.strip() == "fargate-predict-age-pipeline: version 1 is the first one there is; nothing to roll back to"
    assert cli("rollback", "--to", "3")[0] == 0 and live_version(sfn) == f"{MACHINE_ARN}:3"


@pytest.mark.parametrize("to, message", [
    ("3", "fargate-predict-age-pipeline: version 3 is already live"),
    ("9", "fargate-predict-age-pipeline: there is no version 9 (live: 3)"),
])
def test_rollback_to_a_version_that_cannot_be(three_versions, to, message):
    code, out = cli("rollback", "--to", to)
    assert code == 1 and out.strip() == message
    assert live_version(three_versions) == f"{MACHINE_ARN}:3"


def test_rollback_without_an_alias_says_deploy(aws):
    boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name="fargate-predict-age-pipeline", definition=definition("v1"), roleArn=ROLE, tags=TAGS)
    code, out = cli("rollback")
    assert code == 1 and "has no alias 'live': deploy with this stepkit first" in out


def test_deploy_says_which_version_is_live(aws):
    from tests.aws.test_deploy import deploy

    code, out = deploy()
    assert code == 0 and out.strip().splitlines()[-1].startswith("live: no alias 'live' on fargate-predict-age-pipeline")
    # What the stack's version and alias resources do on AWS (moto's CloudFormation skips them):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    version = sfn.update_state_machine(stateMachineArn=MACHINE_ARN, publish=True,
                                       definition=sfn.describe_state_machine(stateMachineArn=MACHINE_ARN)["definition"])
    sfn.create_state_machine_alias(name="live", routingConfiguration=[
        {"stateMachineVersionArn": version["stateMachineVersionArn"], "weight": 100}])
    code, out = deploy()
    assert code == 0 and out.strip().splitlines()[-2:] == [
        "stack ai-agent-predict-age: no changes", "live: version 1 (alias live; `stepkit rollback` goes back one)"]


# --- a run records its version (DescribeExecution / ListExecutions items, as the API documents them)

T0 = datetime(2026, 11, 27, 1, 55, tzinfo=timezone.utc)


@pytest.mark.parametrize("execution, label", [
    ({"stateMachineVersionArn": f"{MACHINE_ARN}:7", "stateMachineAliasArn": f"{MACHINE_ARN}:live"}, "v7 (live)"),
    ({"stateMachineVersionArn": f"{MACHINE_ARN}:7"}, "v7"),     # started on the version ARN
    ({}, "latest"),                                             # started on the unqualified ARN
], ids=["alias", "version", "unqualified"])
def test_a_run_shows_the_version_it_ran(execution, label):
    e = {"executionArn": f"{MACHINE_ARN.replace(':stateMachine:', ':execution:')}:r1", "name": "r1",
         "status": "SUCCEEDED", "startDate": T0, "stopDate": T0.replace(hour=2), **execution}
    assert ops.render_runs([e])[1].split()[-len(label.split()):] == label.split()
    from stepkit.aws import timeline

    assert timeline.render(timeline.build(e, []))[0].endswith(f"state machine version {label}")


def test_runs_and_status_on_moto_show_latest(aws):
    """moto records no version on an execution: what an unqualified start shows."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.create_state_machine(name="fargate-predict-age-pipeline", definition=definition("v1"), roleArn=ROLE, tags=TAGS)
    sfn.start_execution(stateMachineArn=MACHINE_ARN, name="r1", input="{}")
    code, out = cli("runs")
    assert code == 0 and out.splitlines()[0].split()[-1] == "version" and out.splitlines()[1].split()[-1] == "latest"


@pytest.mark.parametrize("alias, target", [
    ({"stateMachineAliasArn": f"{MACHINE_ARN}:live", "routingConfiguration": [
        {"stateMachineVersionArn": f"{MACHINE_ARN}:4", "weight": 100}]}, f"{MACHINE_ARN}:live"),
])
def test_the_alias_is_what_runs_start(alias, target):
    live = versions.Live.of(alias)
    assert (live.alias_arn, live.number) == (target, 4)


# --- one run at a time: `stepkit run` names the run in the way

@pytest.fixture
def holding(aws):
    """A run of the pipeline's machine that is still going (moto's interpreter, in a 10-minute Wait)."""
    from tests.aws.test_ops import _moto_config

    _moto_config(aws, True)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.create_state_machine(name="fargate-predict-age-pipeline", definition=definition("v1"), roleArn=ROLE, tags=TAGS)
    arn = sfn.start_execution(stateMachineArn=MACHINE_ARN, name="run-a", input="{}")["executionArn"]
    import time

    for _ in range(50):  # the interpreter enters the Wait state a moment after the start
        if any("stateEnteredEventDetails" in e for e in sfn.get_execution_history(executionArn=arn)["events"]):
            break
        time.sleep(0.1)
    yield sfn
    sfn.stop_execution(executionArn=arn)
    _moto_config(aws, False)


def test_run_refuses_while_another_runs_and_names_it(holding):
    code, out = cli("run", str(PIPELINE), "--env-file", str(ENV_FILE), "--name", "run-b")
    assert code == 1
    line = out.strip()
    assert "\n" not in line
    assert line.startswith("fargate-predict-age-pipeline: run run-a is still running (started ")
    assert ", now at Hold); one run at a time" in line and "`stepkit status run-a`" in line
    assert "aws stepfunctions stop-execution --execution-arn arn:aws:states:us-east-1:123456789012:execution:" in line
    names = [e["name"] for e in holding.list_executions(stateMachineArn=MACHINE_ARN)["executions"]]
    assert names == ["run-a"]  # nothing was started


def test_the_line_counts_the_others():
    running = [{"name": f"r{i}", "executionArn": f"arn:x:{i}", "startDate": T0} for i in (3, 2, 1)]
    assert ops.in_the_way(running, "m").startswith("m: run r3 is still running (started 2026-11-27 01:55 UTC) "
                                                   "(and 2 more); one run at a time")


@pytest.mark.parametrize("name", ["it's", "a b", "a/b", "..", "x" * 81, "", "run;DROP", 'q"'])
def test_run_names_outside_letters_digits_dash_underscore_are_refused(aws, name):
    code, out = cli("run", str(PIPELINE), "--env-file", str(ENV_FILE), "--name", name)
    assert code == 1
    assert out.strip() == f"run name {name!r}: 1-80 letters, digits, '-' or '_' (it names S3 folders and reaches SQL)"
