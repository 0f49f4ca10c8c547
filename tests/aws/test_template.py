"""The CloudFormation template: cfn-lint clean, and the properties moto's CloudFormation drops or skips.

moto creates IAM, Lambda, ECS, logs, Step Functions, Events and S3 through the stack (see
test_deploy.py) but skips alarms/budgets, Glue databases and Athena workgroups, and drops Lambda
Architectures, task RuntimePlatform/Cpu and state machine LoggingConfiguration: those are pinned here.
"""
from __future__ import annotations

import json

import pytest

from stepkit.compiler import template as tpl
from stepkit.ir.cfn import TAG_PIPELINE, Portable
from tests.aws.variants import compile_variant

NAMED_WORKGROUP = {"aws.workgroup": "ai_agent_predict_age", "cost_alarm.email": "ops@example.com",
                   "schedule.enabled": True, "compute.tasks.training.ephemeral_storage_gb": 100,
                   "alerts": {"email": "ops@example.com", "on_success": True},
                   "aws.kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}


def lint(template: dict) -> list[str]:
    from cfnlint.api import ManualArgs, lint as cfn_lint

    matches = cfn_lint(tpl.render(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches]


@pytest.mark.parametrize("changes", [{}, NAMED_WORKGROUP], ids=["as-shipped", "named-workgroup"])
def test_cfn_lint_finds_nothing(tmp_path, variables, changes):
    template = tpl.build(compile_variant(tmp_path, variables, changes))
    assert lint(template) == []


def test_cfn_lint_sees_a_broken_template(artifacts):
    # The check above is only worth something if cfn-lint really reads these templates.
    template = tpl.build(artifacts)
    template["Resources"]["TrainingTaskDefinition"]["Properties"]["NetworkMode"] = "bridged"
    assert any(m.startswith("E") for m in lint(template))


def _props(t: dict, lid: str) -> dict:
    return t["Resources"][lid]["Properties"]


@pytest.mark.parametrize("lid, path, expected", [
    # Dropped by moto: the ARM64 runtime and the Fargate size of each task definition.
    ("TrainingTaskDefinition", "RuntimePlatform.CpuArchitecture", "ARM64"),
    ("TrainingTaskDefinition", "Cpu", "16384"),
    ("TrainingTaskDefinition", "Memory", "65536"),
    ("PredictionTaskDefinition", "Cpu", "4096"),
    ("PredictionTaskDefinition", "Memory", "16384"),
    ("PredictionTaskDefinition", "RequiresCompatibilities", ["FARGATE"]),
    ("PredictionTaskDefinition", "ContainerDefinitions.0.LogConfiguration.Options.awslogs-group",
     {"Ref": "PredictionLogGroup"}),
    # Dropped by moto: the Lambda architecture.
    ("CleanupFunction", "Architectures", ["arm64"]),
    ("CleanupFunction", "Runtime", "python3.12"),
    ("CleanupFunction", "Environment.Variables.STEPKIT_ROOT", "s3://stepkit-example-bucket/predict-age/"),
    ("CleanupFunction", "Code.S3Key", {"Ref": "CleanupCodeKey"}),
    # Dropped by moto: state machine logging; X-Ray tracing; STANDARD for .sync integrations.
    ("StateMachine", "LoggingConfiguration.Destinations.0.CloudWatchLogsLogGroup.LogGroupArn",
     {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}),
    ("StateMachine", "LoggingConfiguration.Level", "ALL"),
    ("StateMachine", "TracingConfiguration.Enabled", True),
    ("StateMachine", "StateMachineType", "STANDARD"),
    # Skipped by moto: the Glue database and the cost budget ($20, as the seed's alarm).
    ("Database", "DatabaseInput.Name", "ai_agent_kb_predict_age"),
    ("CostBudget", "Budget.BudgetLimit", {"Amount": 20.0, "Unit": "USD"}),
    ("CostBudget", "Budget.TimeUnit", "MONTHLY"),
    ("Schedule", "State", "DISABLED"),
    ("Schedule", "ScheduleExpression", "cron(0 6 ? * MON *)"),
    ("TrainingRepository", "RepositoryName", "ai-agent-predict-age-training"),
    ("StatemachineRole", "AssumeRolePolicyDocument.Statement.0.Condition",
     {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}),
    ("TaskRole", "AssumeRolePolicyDocument.Statement.0.Principal.Service", "ecs-tasks.amazonaws.com"),
])
def test_template_properties(artifacts, lid, path, expected):
    node = _props(tpl.build(artifacts), lid)
    for key in path.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]
    assert node == expected


@pytest.mark.parametrize("changes, lid, path, expected", [
    (NAMED_WORKGROUP, "WorkGroup", "WorkGroupConfiguration.BytesScannedCutoffPerQuery", 3000 * 10**9),
    # Not enforced: Athena fails a CTAS with external_location in a workgroup that overrides the client.
    (NAMED_WORKGROUP, "WorkGroup", "WorkGroupConfiguration.EnforceWorkGroupConfiguration", False),
    (NAMED_WORKGROUP, "Schedule", "State", "ENABLED"),
    (NAMED_WORKGROUP, "TrainingTaskDefinition", "EphemeralStorage.SizeInGiB", 100),
    ({"cost_alarm.athena_bytes_scanned_cutoff_gb": 50, "aws.workgroup": "wg"}, "WorkGroup",
     "WorkGroupConfiguration.BytesScannedCutoffPerQuery", 50 * 10**9),
    ({"compute.lambda.architecture": "x86_64"}, "CleanupFunction", "Architectures", ["x86_64"]),
])
def test_template_follows_the_spec(tmp_path, variables, changes, lid, path, expected):
    node = _props(tpl.build(compile_variant(tmp_path, variables, changes)), lid)
    for key in path.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]
    assert node == expected


def test_budget_notifies_email_and_topic(tmp_path, variables):
    t = tpl.build(compile_variant(tmp_path, variables, NAMED_WORKGROUP))
    subs = _props(t, "CostBudget")["NotificationsWithSubscribers"][0]["Subscribers"]
    assert {"SubscriptionType": "EMAIL", "Address": "ops@example.com"} in subs
    assert {"SubscriptionType": "SNS", "Address": {"Ref": "CostAlertTopic"}} in subs


@pytest.mark.parametrize("changes, present", [
    ({}, True),  # the shipped pipeline names its own workgroup
    ({"aws.workgroup": "primary"}, False),  # exists in every account: nothing to create, said in Metadata
    ({"aws.workgroup": "wg"}, True),
    ({"cost_alarm": None}, True),
])
def test_optional_resources(tmp_path, variables, changes, present):
    t = tpl.build(compile_variant(tmp_path, variables, changes))
    if "cost_alarm" in changes:
        assert "CostBudget" not in t["Resources"] and "CostAlertTopic" not in t["Resources"]
    else:
        assert ("WorkGroup" in t["Resources"]) is present


def test_data_holding_resources_are_retained(artifacts):
    t = tpl.build(artifacts)
    kept = {lid for lid, r in t["Resources"].items() if r.get("DeletionPolicy") == "Retain"}
    # ... and the state machine's versions, so the one before stays for `stepkit rollback`.
    data_types = {"AWS::Glue::Database", "AWS::ECR::Repository", "AWS::Logs::LogGroup",
                  "AWS::StepFunctions::StateMachineVersion"}
    assert kept == {lid for lid, r in t["Resources"].items() if r["Type"] in data_types}
    assert all(t["Resources"][lid]["UpdateReplacePolicy"] == "Retain" for lid in kept)
    assert "AWS::S3::Bucket" not in {r["Type"] for r in t["Resources"].values()}


def test_every_taggable_resource_names_the_pipeline(artifacts):
    t = tpl.build(artifacts)
    tagged = [r for r in t["Resources"].values() if "Tags" in r["Properties"]]
    assert len(tagged) >= 14
    for r in tagged:
        assert {"Key": TAG_PIPELINE, "Value": "predict-age"} in r["Properties"]["Tags"]


def test_account_and_region_come_from_pseudo_parameters(artifacts):
    text = tpl.render(tpl.build(artifacts))
    assert "123456789012" not in text
    assert ":us-east-1:" not in text
    assert "${AWS::AccountId}" in text and "${AWS::Region}" in text


def test_definition_and_policies_are_the_compiled_ones(artifacts):
    from stepkit.ir import asl

    t = tpl.build(artifacts)
    p = Portable("123456789012", "us-east-1")
    assert _props(t, "StateMachine")["DefinitionString"] == {"Fn::Sub": p.text(asl.render(artifacts.definition))}
    assert _props(t, "TaskExecutionPolicy")["PolicyDocument"] == p.walk(artifacts.policies["task_execution"].document())


@pytest.mark.parametrize("text, expected", [
    ("arn:aws:states:us-east-1:123456789012:stateMachine:x", "arn:aws:states:${AWS::Region}:${AWS::AccountId}:stateMachine:x"),
    ("arn:aws:iam::123456789012:role/r", "arn:aws:iam::${AWS::AccountId}:role/r"),
    ("arn:aws:s3:::bucket/123456789012/us-east-1", "arn:aws:s3:::bucket/123456789012/us-east-1"),
    ("SELECT '${run_id}'", "SELECT '${!run_id}'"),
    ("us-east-1 and 123456789012 in prose", "us-east-1 and 123456789012 in prose"),
])
def test_portable_replaces_arn_positions_only(text, expected):
    assert Portable("123456789012", "us-east-1").text(text) == expected


def test_compile_writes_the_template_deterministically(tmp_path):
    from click.testing import CliRunner

    from stepkit.cli import main
    from tests.aws.conftest import ENV_FILE, PIPELINE

    outs = []
    for run in ("a", "b"):
        result = CliRunner().invoke(main, ["compile", str(PIPELINE), "--env-file", str(ENV_FILE),
                                           "--out", str(tmp_path / run)])
        assert result.exit_code == 0, result.output
        outs.append((tmp_path / run / "template.json").read_text())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["Resources"]["StateMachine"]["Type"] == "AWS::StepFunctions::StateMachine"


def test_outputs_name_everything_an_operator_needs(tmp_path, variables):
    t = tpl.build(compile_variant(tmp_path, variables, NAMED_WORKGROUP))
    assert set(t["Outputs"]) == {
        "StateMachineArn", "StateMachineName", "ClusterName", "ClusterArn",
        "StatemachineRoleArn", "LambdaRoleArn", "TaskRoleArn", "TaskExecutionRoleArn",
        "TrainingTaskDefinitionArn", "PredictionTaskDefinitionArn", "TrainingRepositoryUri", "PredictionRepositoryUri",
        "TrainingLogGroupName", "PredictionLogGroupName", "StateMachineLogGroupName", "CleanupFunctionLogGroupName",
        "CleanupFunctionArn", "ScheduleRuleName", "DatabaseName", "WorkGroupName", "CostBudgetName",
        "CostAlertTopicArn", "StateMachineVersionArn", "StateMachineAliasArn",
        "RunAlertTopicArn", "RunAlertFunctionArn", "RunAlertRuleName", "RunAlertFunctionLogGroupName"}


# --- versions and the alias (moto's CloudFormation skips both resource types: pinned here) ------

def _version_id(t: dict) -> str:
    (lid,) = [k for k, r in t["Resources"].items() if r["Type"] == "AWS::StepFunctions::StateMachineVersion"]
    return lid


def test_a_version_is_published_and_the_alias_and_schedule_follow_it(artifacts):
    t = tpl.build(artifacts)
    version = _version_id(t)
    assert _props(t, version) == {
        "StateMachineArn": {"Ref": "StateMachine"},
        "StateMachineRevisionId": {"Fn::GetAtt": ["StateMachine", "StateMachineRevisionId"]},
        "Description": f"stepkit {version.removeprefix('StateMachineVersion')}: predict-age"}
    assert t["Resources"][version]["UpdateReplacePolicy"] == t["Resources"][version]["DeletionPolicy"] == "Retain"
    alias = _props(t, "StateMachineAlias")
    assert alias["Name"] == "live"
    assert alias["RoutingConfiguration"] == [{"StateMachineVersionArn": {"Ref": version}, "Weight": 100}]
    rule = t["Resources"]["Schedule"]
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::Sub": "${StateMachine}:live"}
    assert rule["DependsOn"] == ["StateMachineAlias"]
    # A start through an alias is authorized on the unqualified ARN; the qualifier keeps it to the alias.
    start = _props(t, "ScheduleRole")["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert start["Resource"] == {"Ref": "StateMachine"}
    assert start["Condition"] == {"StringEquals": {"states:StateMachineQualifier": "live"}}


@pytest.mark.parametrize("changes, new_version", [
    ({}, False),                                            # recompiled as it is: the same version
    ({"compute.tasks.prediction.memory_gb": 20}, False),    # a task definition: the machine is unchanged
    ({"schedule.enabled": True}, False),
    ({"batching.max_concurrency": 50}, True),                # the definition changed
    ({"compute.tasks.training.timeout_minutes": 30}, True),  # a state's TimeoutSeconds
], ids=["same", "task-size", "schedule", "definition", "timeout"])
def test_a_new_version_exactly_when_the_machine_changes(tmp_path, variables, artifacts, changes, new_version):
    before = _version_id(tpl.build(artifacts))
    after = _version_id(tpl.build(compile_variant(tmp_path, variables, changes)))
    assert (after != before) is new_version
