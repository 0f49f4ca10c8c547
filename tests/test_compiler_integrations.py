"""stepkit's allow-list of integration resources and parameters (no validator checks these)."""
from __future__ import annotations

import copy

import pytest

from stepkit.compiler import integrations

ATHENA = "arn:aws:states:::athena:startQueryExecution.sync"
ECS = "arn:aws:states:::ecs:runTask.sync"
LAMBDA = "arn:aws:states:::lambda:invoke"
LIST = "arn:aws:states:::aws-sdk:sfn:listExecutions"


def task(resource: str, **params) -> dict:
    return {"Type": "Task", "Resource": resource, "Parameters": params, "End": True}


ECS_GOOD = task(
    ECS, LaunchType="FARGATE", Cluster="arn:c", TaskDefinition="fam", PropagateTags="TASK_DEFINITION",
    EnableExecuteCommand=False, PlatformVersion="1.4.0", Group="g",
    NetworkConfiguration={"AwsvpcConfiguration": {"Subnets": ["s"], "SecurityGroups": ["g"], "AssignPublicIp": "DISABLED"}},
    Overrides={"ContainerOverrides": [{"Name": "c", "Command.$": "States.Array('a')"}]},
)


def dist_map(child: dict, writer: dict | None = None) -> dict:
    state = {"Type": "Map", "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                                              "StartAt": "Child", "States": {"Child": child}}, "End": True}
    if writer:
        state["ResultWriter"] = writer
    return state


GOOD = [
    ("athena", task(ATHENA, **{"QueryString.$": "States.Format('x')", "WorkGroup": "primary",
                               "QueryExecutionContext": {"Database": "d"},
                               "ResultConfiguration": {"OutputLocation": "s3://b/p/"},
                               "ExecutionParameters": ["1"]})),
    ("ecs", ECS_GOOD),
    ("lambda", task(LAMBDA, FunctionName="arn:f", Payload={"anything": {"goes": 1}}, Qualifier="$LATEST")),
    ("map child + writer", dist_map(ECS_GOOD, {"Resource": "arn:aws:states:::s3:putObject",
                                               "Parameters": {"Bucket": "b", "Prefix": "p"}})),
    # The "one run at a time" check state: the RUNNING executions of its own machine.
    ("listExecutions", task(LIST, StateMachineArn="arn:aws:states:us-east-1:1:stateMachine:m", StatusFilter="RUNNING",
                            MaxResults=2)),
    ("pass and wait ignored", {"Type": "Pass", "Parameters": {"Whatever": 1}, "End": True}),
]

BROKEN = [
    # (case, state, expected path, expected words in the message)
    ("typo in athena key", task(ATHENA, QueryStrin="SELECT 1"), "States.S.Parameters.QueryStrin",
     "'QueryStrin' is not a parameter of arn:aws:states:::athena:startQueryExecution.sync"),
    ("missing required", task(ATHENA, WorkGroup="primary"), "States.S.Parameters", "needs 'QueryString'"),
    ("typo in resource", task("arn:aws:states:::athena:startQueryExecution.snyc", QueryString="x"),
     "States.S.Resource", "is not an integration stepkit knows"),
    ("nested typo", task(ATHENA, QueryString="x", ResultConfiguration={"OutputLocaton": "s3://b/"}),
     "States.S.Parameters.ResultConfiguration.OutputLocaton", "'OutputLocaton' is not a parameter"),
    ("typo in container override", task(ECS, TaskDefinition="f", Overrides={"ContainerOverrides": [{"Nmae": "c"}]}),
     "States.S.Parameters.Overrides.ContainerOverrides[0].Nmae", "'Nmae' is not a parameter"),
    ("dynamic key checked too", task(LAMBDA, FunctionName="f", **{"Paylod.$": "$"}), "States.S.Parameters.Paylod.$",
     "'Paylod' is not a parameter of arn:aws:states:::lambda:invoke"),
    # Fields of RunTask that the Step Functions ECS integration does not pass (CreateStateMachine refuses them).
    ("managed tags", task(ECS, TaskDefinition="f", EnableECSManagedTags=True),
     "States.S.Parameters.EnableECSManagedTags", "'EnableECSManagedTags' is not a parameter"),
    ("task role override", task(ECS, TaskDefinition="f", Overrides={"TaskRoleArn": "arn:aws:iam::1:role/r"}),
     "States.S.Parameters.Overrides.TaskRoleArn", "'TaskRoleArn' is not a parameter"),
    ("execution role override", task(ECS, TaskDefinition="f", Overrides={"ExecutionRoleArn": "arn:aws:iam::1:role/r"}),
     "States.S.Parameters.Overrides.ExecutionRoleArn", "'ExecutionRoleArn' is not a parameter"),
    ("listExecutions typo", task(LIST, StateMachineArn="arn:m", StatusFiltr="RUNNING"),
     "States.S.Parameters.StatusFiltr", "'StatusFiltr' is not a parameter of arn:aws:states:::aws-sdk:sfn:listExecutions"),
    ("object expected", task(ECS, TaskDefinition="f", NetworkConfiguration="subnet-1"),
     "States.S.Parameters.NetworkConfiguration", "expected an object"),
    ("typo inside a Map child", dist_map(task(ECS, TaskDefiniton="f")),
     "States.S.ItemProcessor.States.Child.Parameters.TaskDefiniton", "'TaskDefiniton' is not a parameter"),
    ("bad ResultWriter key", dist_map(ECS_GOOD, {"Resource": "arn:aws:states:::s3:putObject",
                                                 "Parameters": {"Bucket": "b", "Prefx": "p"}}),
     "States.S.ResultWriter.Parameters.Prefx", "'Prefx' is not a parameter of arn:aws:states:::s3:putObject"),
    ("ResultWriter resource typo", dist_map(ECS_GOOD, {"Resource": "arn:aws:states:::s3:putObjects",
                                                       "Parameters": {"Bucket": "b"}}),
     "States.S.ResultWriter.Resource", "is not an integration stepkit knows"),
    ("branch of a Parallel", {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "B", "States": {"B": task(LAMBDA, FunctionNme="f")}}]},
     "States.S.Branches[0].States.B.Parameters.FunctionNme", "'FunctionNme' is not a parameter"),
]


@pytest.mark.parametrize("case,state", GOOD, ids=[c for c, _ in GOOD])
def test_known_integrations_pass(case, state):
    assert integrations.check({"StartAt": "S", "States": {"S": copy.deepcopy(state)}}) == []


@pytest.mark.parametrize("case,state,path,words", BROKEN, ids=[c[0] for c in BROKEN])
def test_typos_are_found_and_located(case, state, path, words):
    issues = integrations.check({"StartAt": "S", "States": {"S": state}})
    # The state that holds it: a Parallel's branch state is its own (it belongs to its own stage).
    owner = "B" if ".Branches[" in path else "S"
    assert [(i.state, i.path) for i in issues][:1] == [(owner, path)]
    assert words in issues[0].message


# --- called from build(): a typo in a block fails compile, located at its stage ----------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def compile_age():
    from stepkit.cli import _variables
    from stepkit.compiler.build import compile_file

    return compile_file(ROOT / "pipelines" / "predict_age.yaml", _variables((), str(ROOT / "pipelines" / "example.env")),
                        check_sql=False)


def stage_line(name: str) -> int:
    lines = (ROOT / "pipelines" / "predict_age.yaml").read_text().splitlines()
    return lines.index(f"  - name: {name}") + 1


def test_a_block_typo_fails_compile(monkeypatch):
    from stepkit.errors import SpecError
    from stepkit.steps import _ecs

    original = _ecs.task

    def typo(*args, **kwargs):
        state = original(*args, **kwargs)
        state["Parameters"]["LaunchTyp"] = state["Parameters"].pop("LaunchType")
        return state

    monkeypatch.setattr(_ecs, "task", typo)
    with pytest.raises(SpecError) as e:
        compile_age()
    lines = str(e.value).splitlines()
    assert len(lines) == 2  # the training task and the fan-out's child
    assert lines[0].startswith(f"{ROOT / 'pipelines' / 'predict_age.yaml'}:{stage_line('Training')}:5: stages[4]: "
                               "state States.Training.Parameters.LaunchTyp: 'LaunchTyp' is not a parameter of "
                               "arn:aws:states:::ecs:runTask.sync")
    assert f":{stage_line('ParallelPrediction')}:5: stages[8]: state States.ParallelPrediction.ItemProcessor" in lines[1]


def test_the_compiled_pipeline_uses_only_known_integrations():
    assert integrations.check(compile_age().definition) == []
