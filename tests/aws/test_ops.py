"""Operating runs against moto: `stepkit run` (AWS), `runs`, `status`, `logs`, `results`.

Runs execute in moto's Step Functions interpreter (config execute_state_machine), which keeps
its own state machines apart from CloudFormation's: so these tests create the machine from
the compiled definition through the Step Functions API, tagged as deploy's stack tags it.
"""
from __future__ import annotations

import json
import time
import urllib.request

import boto3
import pytest
from click.testing import CliRunner

from stepkit.cli import main
from tests.aws.conftest import ENV_FILE, PIPELINE, REGION
from tests.aws.variants import compile_variant, write_variant

# moto's interpreter refuses ToleratedFailurePercentage (a Distributed Map field); an inline Map runs.
INLINE = {"batching.map_mode": "inline", "batching.max_concurrency": 10, "batching.batches": 7}
MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:fargate-predict-age-pipeline"
TAGS = [{"key": "stepkit:managed-by", "value": "stepkit"}, {"key": "stepkit:pipeline", "value": "predict-age"}]


def _moto_config(url: str, execute: bool) -> None:
    body = json.dumps({"stepfunctions": {"execute_state_machine": execute}, "lambda": {"use_docker": False}})
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/config", data=body.encode(), method="POST",
                                                  headers={"Content-Type": "application/json"})).read()


@pytest.fixture
def executing(aws):
    _moto_config(aws, True)
    yield aws
    _moto_config(aws, False)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def wait_done(arn: str, seconds: float = 20) -> dict:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    deadline = time.monotonic() + seconds
    while True:
        d = sfn.describe_execution(executionArn=arn)
        if d["status"] != "RUNNING" or time.monotonic() > deadline:
            return d
        time.sleep(0.2)


@pytest.fixture
def pipeline_machine(executing, tmp_path, variables):
    from stepkit.ir import asl

    a = compile_variant(tmp_path, variables, INLINE)
    boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name="fargate-predict-age-pipeline", definition=asl.render(a.definition),
        roleArn="arn:aws:iam::123456789012:role/ai-agent-predict-age-sfn", tags=TAGS)
    return write_variant(tmp_path, INLINE)


def test_run_runs_and_status_of_a_failing_run(pipeline_machine):
    code, out = cli("run", str(pipeline_machine), "--env-file", str(ENV_FILE), "--name", "run-a")
    assert code == 0 and "run-a" in out, out
    done = wait_done(MACHINE_ARN.replace(":stateMachine:", ":execution:") + ":run-a")
    # moto's interpreter runs the first states, then fails the one-run-at-a-time check: its aws-sdk
    # integration looks the parameters up in botocore's camelCase (stateMachineArn), while Step Functions
    # takes them in PascalCase (StateMachineArn, as AWS's SDK-integration guide says and the definition has).
    assert done["status"] == "FAILED"
    code, out = cli("runs")
    assert code == 0
    assert [l.split()[:2] for l in out.splitlines()[1:]] == [["run-a", "FAILED"]]
    code, out = cli("status", "run-a")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("execution run-a: FAILED")
    states = [l.split()[-1] for l in lines if l.startswith("  ") and "stage" not in l]
    assert states[:2] == ["Start", "NewRun"] and lines[-2].split()[-2:] == ["CheckOtherRuns", "FAILED"], lines
    assert any(l.startswith("error: ") for l in lines)


def test_run_names_must_be_usable_as_run_ids(pipeline_machine):
    code, out = cli("run", str(pipeline_machine), "--env-file", str(ENV_FILE), "--name", "a/b")
    assert code == 1 and "run name 'a/b'" in out
    assert boto3.client("stepfunctions", region_name=REGION).list_executions(stateMachineArn=MACHINE_ARN)["executions"] == []


def test_run_before_deploy_says_deploy_first(aws):
    code, out = cli("run", str(PIPELINE), "--env-file", str(ENV_FILE))
    assert code == 1
    assert out.strip().endswith(f"run `stepkit deploy {PIPELINE}` first")


def test_status_shows_map_progress_and_the_latest_run(executing):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Score", "States": {
        "Score": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "Next": "Settle",
                  "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "One",
                                    "States": {"One": {"Type": "Pass", "End": True}}}},
        "Settle": {"Type": "Wait", "Seconds": 1, "End": True}}}
    arn = sfn.create_state_machine(name="maps", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/r",
                                   tags=[{"key": "stepkit:pipeline", "value": "maps"}])["stateMachineArn"]
    sfn.start_execution(stateMachineArn=arn, name="m1", input=json.dumps({"items": [1, 2, 3, 4]}))
    assert wait_done(arn.replace(":stateMachine:", ":execution:") + ":m1")["status"] == "SUCCEEDED"
    code, out = cli("status")
    assert code == 0, out
    assert out.splitlines()[0].startswith("execution m1: SUCCEEDED")
    assert [l.split()[-1] for l in out.splitlines() if l.startswith("  ") and "stage" not in l] == ["Score", "Settle"]
    assert "Score: 4/4 succeeded, 0 failed, 0 running" in out


@pytest.mark.parametrize("args, message", [
    (["runs"], "no stepkit state machine in us-east-1"),
    (["status", "--pipeline", "nope"], "no stepkit state machine for pipeline 'nope'"),
])
def test_nothing_deployed(aws, args, message):
    code, out = cli(*args)
    assert code == 1 and out.strip().startswith(message)


def test_two_pipelines_need_a_choice(aws):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    for name in ("a", "b"):
        sfn.create_state_machine(name=name, definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
                                 roleArn="arn:aws:iam::123456789012:role/r", tags=[{"key": "stepkit:pipeline", "value": name}])
    code, out = cli("runs")
    assert code == 1 and "pick one with --pipeline NAME" in out
    code, out = cli("runs", "--pipeline", "b")
    assert code == 0 and out.splitlines() == [out.splitlines()[0]]  # header only: no runs yet


LOG_GROUPS = {  # stage -> where its logs are: its containers, its Lambda
    "Training": "/stepkit/ai-agent-predict-age/training",
    "ParallelPrediction": "/stepkit/ai-agent-predict-age/prediction",
    "PreCleanup": "/aws/lambda/ai-agent-predict-age-cleanup",
}


def test_logs_of_a_stage_come_from_its_log_group(aws):
    from tests.aws.test_deploy import deploy

    assert deploy()[0] == 0  # one stack for the whole table
    logs = boto3.client("logs", region_name=REGION)
    now = int(time.time() * 1000)
    for stage, group in LOG_GROUPS.items():
        logs.create_log_stream(logGroupName=group, logStreamName="s1")
        logs.put_log_events(logGroupName=group, logStreamName="s1",
                            logEvents=[{"timestamp": now, "message": f"hello from {stage}"}])
    for stage in LOG_GROUPS:
        code, out = cli("logs", stage, "--since", "5")
        assert code == 0, out
        assert out.strip().splitlines() == [out.strip().splitlines()[0]] and out.strip().endswith(f"hello from {stage}")


def test_logs_of_an_unknown_stage(aws):
    from tests.aws.test_deploy import deploy

    assert deploy()[0] == 0
    code, out = cli("logs", "Nope")
    assert code == 1 and "no stage named 'Nope'" in out and "Training" in out


def test_results_summarise_the_final_table_through_athena(aws):
    """moto's Athena runs no SQL: the rows below are what it is told to return; the test proves
    the call path (workgroup, database, output location, the seed's query) and the printing."""
    rows = [{"Data": [{"VarCharValue": v} for v in ("total_predictions", "avg_age", "avg_confidence", "null_predictions")]},
            {"Data": [{"VarCharValue": v} for v in ("378000000", "41.7", "0.81", "0")]}]
    body = json.dumps({"account_id": "123456789012", "region": REGION, "results": [{
        "rows": rows, "column_info": [{"Name": n, "Type": "varchar", "CatalogName": "hive", "SchemaName": "",
                                       "TableName": "", "Label": n, "Nullable": "UNKNOWN", "CaseSensitive": True,
                                       "Precision": 0, "Scale": 0}
                                      for n in ("total_predictions", "avg_age", "avg_confidence", "null_predictions")]}]})
    urllib.request.urlopen(urllib.request.Request(f"{aws}/moto-api/static/athena/query-results", data=body.encode(),
                                                  method="POST", headers={"Content-Type": "application/json"})).read()
    # The stack creates the pipeline's workgroup; moto's CloudFormation skips AWS::Athena::WorkGroup.
    boto3.client("athena", region_name=REGION).create_work_group(Name="ai-agent-predict-age")
    code, out = cli("results", str(PIPELINE), "--env-file", str(ENV_FILE))
    assert code == 0, out
    assert [l.split() for l in out.splitlines()] == [["total_predictions", "378000000"], ["avg_age", "41.7"],
                                                     ["avg_confidence", "0.81"], ["null_predictions", "0"]]
    athena = boto3.client("athena", region_name=REGION)
    qid = athena.list_query_executions()["QueryExecutionIds"][0]
    q = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
    assert "FROM ai_agent_kb_predict_age.predict_age_final_results" in q["Query"]
    assert "SUM(CASE WHEN predicted_age IS NULL THEN 1 ELSE 0 END)" in q["Query"]
    assert q["ResultConfiguration"]["OutputLocation"].startswith("s3://stepkit-example-bucket/predict-age/athena-results/")
    assert q["WorkGroup"] == "ai-agent-predict-age" and q["QueryExecutionContext"]["Database"] == "ai_agent_kb_predict_age"
