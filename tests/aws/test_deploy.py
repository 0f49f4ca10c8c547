"""`stepkit deploy` against moto's CloudFormation, through the CLI as a user types it."""
from __future__ import annotations

import json
import re

import boto3
import pytest
from click.testing import CliRunner

from stepkit.cli import main
from tests.aws.conftest import BUCKET, ENV_FILE, PIPELINE, REGION
from tests.aws.variants import write_variant

ADDED_STAGE = {"name": "ExtraWait", "type": "wait", "seconds": 5}


def deploy(*args: str, pipeline=PIPELINE) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["deploy", str(pipeline), "--env-file", str(ENV_FILE), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def client(name: str):
    return boto3.client(name, region_name=REGION)


def compiled(pipeline=PIPELINE):
    from stepkit.cli import _variables
    from stepkit.compiler.build import compile_file

    return compile_file(pipeline, _variables((), str(ENV_FILE)))


def test_deploy_to_an_empty_account_creates_every_resource_moto_keeps(aws):
    code, out = deploy()
    assert code == 0, out
    # (moto fills no Outputs for a stack made by a change set; test_template.py pins them.)
    assert "CREATE_COMPLETE" in out and "+ StateMachine " in out
    a = compiled()
    sm = client("stepfunctions").describe_state_machine(
        stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:fargate-predict-age-pipeline")
    from stepkit.ir import asl

    assert sm["definition"] == asl.render(a.definition)  # pseudo parameters resolved back exactly
    assert sm["roleArn"].endswith(":role/ai-agent-predict-age-sfn")
    iam = client("iam")
    for role, policy in a.policies.items():
        name = a.context.names.role(role)
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == [f"{name}-policy"]
        version = iam.get_policy(PolicyArn=attached[0]["PolicyArn"])["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=attached[0]["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        assert doc == policy.document()
    ecs = client("ecs")
    td = ecs.describe_task_definition(taskDefinition="ai-agent-predict-age-training")["taskDefinition"]
    assert td["memory"] == "65536" and td["containerDefinitions"][0]["image"].endswith(
        ".amazonaws.com/ai-agent-predict-age-training:latest")
    assert td["containerDefinitions"][0]["logConfiguration"]["options"]["awslogs-group"] == \
        "/stepkit/ai-agent-predict-age/training"
    assert ecs.describe_clusters(clusters=["ai-agent-predict-age-cluster"])["clusters"][0]["status"] == "ACTIVE"
    groups = {g["logGroupName"]: g.get("retentionInDays") for g in client("logs").describe_log_groups()["logGroups"]}
    assert groups == {"/aws/lambda/ai-agent-predict-age-cleanup": 30, "/aws/lambda/ai-agent-predict-age-alerts": 30,
                      "/stepkit/ai-agent-predict-age/prediction": 30,
                      "/stepkit/ai-agent-predict-age/statemachine": 30, "/stepkit/ai-agent-predict-age/training": 30}
    fn = client("lambda").get_function_configuration(FunctionName="ai-agent-predict-age-cleanup")
    assert fn["Handler"] == "stepkit.workers.cleanup.handler.handler" and fn["Runtime"] == "python3.12"
    assert fn["Environment"]["Variables"]["STEPKIT_ROOT"] == f"s3://{BUCKET}/predict-age/"
    rule = client("events").describe_rule(Name="ai-agent-predict-age-schedule")
    assert rule["State"] == "DISABLED"
    target = client("events").list_targets_by_rule(Rule="ai-agent-predict-age-schedule")["Targets"][0]
    assert target["Arn"] == sm["stateMachineArn"] + ":live"  # the schedule starts the alias, not the latest revision
    repos = {r["repositoryName"] for r in client("ecr").describe_repositories()["repositories"]}
    assert repos == {"ai-agent-predict-age-training", "ai-agent-predict-age-prediction"}
    # The worker config the containers read (`--config`), and the Lambda code by content hash.
    s3 = client("s3")
    config = json.loads(s3.get_object(Bucket=BUCKET, Key="predict-age/stepkit/pipeline.json")["Body"].read())
    assert config["root"] == f"s3://{BUCKET}/predict-age/" and config["pipeline"]["name"] == "predict-age"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="predict-age/stepkit/code/")["Contents"]]
    assert len(keys) == 1 and keys[0].endswith(".zip")
    assert fn["CodeSha256"]  # moto stored the zip it read from that key


def test_deploy_again_unchanged_changes_nothing(aws):
    assert deploy()[0] == 0
    stacks = client("cloudformation")
    before = stacks.describe_stack_events(StackName="ai-agent-predict-age")["StackEvents"]
    code, out = deploy()
    assert code == 0 and "no changes" in out
    assert stacks.describe_stack_events(StackName="ai-agent-predict-age")["StackEvents"] == before
    assert stacks.list_change_sets(StackName="ai-agent-predict-age")["Summaries"] == [] or all(
        s["ExecutionStatus"] == "EXECUTE_COMPLETE" for s in stacks.list_change_sets(StackName="ai-agent-predict-age")["Summaries"])


def _memory(): return client("ecs").describe_task_definition(taskDefinition="ai-agent-predict-age-prediction")[
    "taskDefinition"]["memory"]


def _states(): return list(json.loads(client("stepfunctions").describe_state_machine(
    stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:fargate-predict-age-pipeline")["definition"])["States"])


def _rule(): return client("events").describe_rule(Name="ai-agent-predict-age-schedule")["State"]


@pytest.mark.parametrize("changes, expected, read, value", [
    ({"compute.tasks.prediction.memory_gb": 20}, {"PredictionTaskDefinition"}, _memory, "20480"),
    # A changed machine publishes a new version, and the alias moves to it (the old version is retained).
    ({"stages+": ADDED_STAGE}, {"StateMachine", "StateMachineVersion*", "StateMachineAlias"},
     lambda: "ExtraWait" in _states(), True),
    ({"schedule.enabled": True}, {"Schedule"}, _rule, "ENABLED"),
], ids=["compute-size", "stage-added", "schedule-on"])
def test_a_changed_spec_updates_only_the_affected_resources(aws, tmp_path, changes, expected, read, value):
    assert deploy()[0] == 0
    assert read() != value
    code, out = deploy(pipeline=write_variant(tmp_path, changes))
    assert code == 0, out
    assert "UPDATE_COMPLETE" in out
    changed = {re.sub(r"^StateMachineVersion\w+", "StateMachineVersion*", line.split()[1])
               for line in out.splitlines() if line.startswith("  ~ ") or line.startswith("  + ")}
    assert changed == expected
    removed = [line for line in out.splitlines() if line.startswith("  - ")]
    assert all("StateMachineVersion" in line and "(retained" in line for line in removed), removed
    assert read() == value


def test_dry_run_shows_the_change_set_and_creates_nothing(aws):
    code, out = deploy("--dry-run")
    assert code == 0, out
    assert "+ StateMachine" in out and "dry run: nothing changed" in out
    assert client("stepfunctions").list_state_machines()["stateMachines"] == []
    assert [r["RoleName"] for r in client("iam").list_roles()["Roles"] if not r["Path"].startswith("/aws-service-role/")] == []


def test_a_deploy_the_iam_api_rejects_fails_with_the_reason(aws, monkeypatch):
    """A policy IAM refuses (here: a bad Effect): one line naming the failure, exit 1."""
    from stepkit.ir.iam import Policy

    real = Policy.document

    def broken(self):
        doc = real(self)
        if self.role == "task":
            doc["Statement"][0]["Effect"] = "Allwo"
        return doc

    monkeypatch.setattr(Policy, "document", broken)
    code, out = deploy()
    assert code == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("deploy of stack ai-agent-predict-age failed:")
    assert "MalformedPolicyDocument" in last
    # moto stops at the first failure without rolling back ("TODO: implement rollback" in its
    # CloudFormation); on AWS the stack rolls back and the reason comes from the stack events,
    # which test_failure_names_the_first_failed_resource covers.


T0 = "2026-01-01T00:00:0{}+00:00"


def _event(second, lid, status, reason="", type_="AWS::IAM::ManagedPolicy"):
    from datetime import datetime

    return {"EventId": f"{lid}-{status}-{second}", "Timestamp": datetime.fromisoformat(T0.format(second)),
            "LogicalResourceId": lid, "ResourceType": type_, "ResourceStatus": status, "ResourceStatusReason": reason}


@pytest.mark.parametrize("status, events, expected", [
    ("ROLLBACK_COMPLETE",
     [_event(1, "TaskPolicy", "CREATE_FAILED", "Resource handler returned message: MalformedPolicyDocument"),
      _event(2, "TaskRole", "CREATE_FAILED", "Resource creation cancelled", "AWS::IAM::Role")],
     "deploy of stack s failed and rolled back (ROLLBACK_COMPLETE): TaskPolicy (AWS::IAM::ManagedPolicy): "
     "Resource handler returned message: MalformedPolicyDocument; the stack cannot be updated now: delete it"),
    ("UPDATE_ROLLBACK_COMPLETE",
     [_event(3, "StateMachine", "UPDATE_FAILED", "Invalid State Machine Definition", "AWS::StepFunctions::StateMachine")],
     "deploy of stack s failed and rolled back (UPDATE_ROLLBACK_COMPLETE): StateMachine "
     "(AWS::StepFunctions::StateMachine): Invalid State Machine Definition"),
])
def test_failure_names_the_first_failed_resource(artifacts, status, events, expected):
    from datetime import datetime

    from stepkit.aws.deploy import Deployer

    d = Deployer.__new__(Deployer)
    d.stack = "s"
    d._events = lambda: list(reversed(events))  # DescribeStackEvents lists newest first
    message = str(d.failure(status, datetime.fromisoformat(T0.format(0))))
    assert message.startswith(expected)


def test_refuses_a_stack_stepkit_did_not_create(aws):
    cfn = client("cloudformation")
    cfn.create_stack(StackName="ai-agent-predict-age", TemplateBody=json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "someone-elses"}}}}))
    code, out = deploy()
    assert code == 1
    assert "was not created by stepkit" in out and "refusing" in out
    assert client("sns").list_topics()["Topics"][0]["TopicArn"].endswith(":someone-elses")


@pytest.mark.parametrize("setup, message", [
    ("no-bucket", "s3://stepkit-example-bucket: bucket does not exist"),
    ("bucket-elsewhere", "s3://stepkit-example-bucket is in eu-west-1 but the pipeline deploys to us-east-1"),
])
def test_bucket_problems_are_one_line(aws, setup, message):
    s3 = client("s3")
    s3.delete_bucket(Bucket=BUCKET)
    if setup == "bucket-elsewhere":
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    code, out = deploy()
    assert code == 1
    assert out.strip().splitlines()[-1].startswith(message)


@pytest.mark.parametrize("enforced, code, expected", [
    # The shared workgroup as every account has it: the deploy goes on (a dry run here).
    (False, 0, "dry run: nothing changed"),
    # Overriding client-side settings: Athena would fail every CTAS stage (each sets its external_location).
    (True, 1, "athena:GetWorkGroup: workgroup primary overrides client-side settings"),
])
def test_the_shared_workgroup_must_not_override_client_settings(aws, tmp_path, enforced, code, expected):
    athena = client("athena")
    athena.delete_work_group(WorkGroup="primary")
    athena.create_work_group(Name="primary", Configuration={
        "EnforceWorkGroupConfiguration": enforced,
        "ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/athena/"}})
    got, out = deploy("--dry-run", pipeline=write_variant(tmp_path, {"aws.workgroup": "primary"}))
    assert got == code, out
    last = out.strip().splitlines()[-1]
    assert last.startswith(expected) if code else expected in out
    if code:
        assert "aws.workgroup" in last and client("cloudformation").list_stacks()["StackSummaries"] == []
