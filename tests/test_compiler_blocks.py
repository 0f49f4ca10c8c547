"""Each building block as a table: a stage snippet -> the state fields, IAM grants and SQL it compiles to.

Every case is predict_age.yaml (example.env values) with `stages` replaced by the snippet (plus
what the block needs before it) and, where given, some top-level settings changed.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from stepkit.cli import _variables
from stepkit.compiler.build import Artifacts, build
from stepkit.ir.context import Context
from stepkit.spec.loader import read_yaml
from stepkit.compiler.load import pipeline_model

ROOT = Path(__file__).resolve().parents[1]
ATHENA = "arn:aws:states:::athena:startQueryExecution.sync"
ECS = "arn:aws:states:::ecs:runTask.sync"
LAMBDA = "arn:aws:states:::lambda:invoke"
ACCOUNT, REGION = "123456789012", "us-east-1"
PREFIX = "ai-agent-predict-age"
MACHINE = "fargate-predict-age-pipeline"


@lru_cache(maxsize=1)
def base() -> dict[str, Any]:
    data, _ = read_yaml(ROOT / "pipelines" / "predict_age.yaml", _variables((), str(ROOT / "pipelines" / "example.env")))
    return data


# Most Athena stages read the staging table: a pipeline must write it before (stepkit refuses a stage
# that reads what no earlier stage writes), so the cases get this stage first when they need it.
STAGING = {"name": "Staging", "type": "athena_ctas", "table": "staging", "template": "staging.sql.j2",
           "partitioned_by": ["batch_group"], "partitions": "batch_groups"}


# stepkit's workers read tables and the model no snippet writes: a stage of unknown effects (a
# Lambda of the user's) before them stands for the stages that would.
BEFORE = {"name": "Before", "type": "lambda_invoke", "function": "before"}


def compile_stages(stages: list[dict], **settings: dict) -> Artifacts:
    data = copy.deepcopy(base())
    reads_staging = any(s["type"].startswith("athena") and s.get("table") != "staging" for s in stages)
    runs_worker = any(s["type"] in ("fan_out", "fargate_task") for s in stages)
    data["stages"] = ([STAGING] if reads_staging else []) + ([BEFORE] if runs_worker else []) + stages
    for key, value in settings.items():
        data[key] = {**data.get(key, {}), **value}
        if key == "compute":  # tasks added beside the spec's own
            data[key]["tasks"] = {**base()["compute"]["tasks"], **value.get("tasks", {})}
    pipeline = pipeline_model().model_validate(data)
    return build(Context(pipeline, ROOT / "pipelines" / "case.yaml"), check_sql=False)


def get(obj: Any, path: str) -> Any:
    """`a.b[0].c` into nested dicts/lists; keys may hold dots when quoted as `'run_id.$'`."""
    for part in _parts(path):
        obj = obj[part]
    return obj


def _parts(path: str) -> list:
    out: list = []
    for chunk in path.replace("[", ".[").split("."):
        if not chunk:
            continue
        out.append(int(chunk[1:-1]) if chunk.startswith("[") else chunk.replace("~", "."))
    return out


CTAS = {"name": "T", "type": "athena_ctas", "table": "training_targets", "template": "training_targets.sql.j2"}
IDS = {"name": "Ids", "type": "batch_ids"}
FAN = {"name": "Fan", "type": "fan_out", "task": "prediction"}
INLINE = {"batching": {"batches": 200, "max_concurrency": 20}}

# (case, stages, settings, state, {path: expected}). In paths `~` stands for a literal dot.
STATES = [
    ("wait", [{"name": "W", "type": "wait", "seconds": 180}], {}, "W",
     {"Type": "Wait", "Seconds": 180, "End": True}),
    ("batch_ids", [IDS], {}, "Ids",
     {"Type": "Pass", "Parameters.ids~$": "States.ArrayRange(0, 897, 1)", "ResultPath": "$.batch_ids"}),
    ("batch_ids follows batches", [IDS], {"batching": {"batches": 12}}, "Ids",
     {"Parameters.ids~$": "States.ArrayRange(0, 11, 1)"}),
    ("lambda by name", [{"name": "L", "type": "lambda_invoke", "function": "notify", "payload": {"a": 1}}], {}, "L",
     {"Resource": LAMBDA, "Parameters.FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-notify",
      "Parameters.Payload.a": 1, "Parameters.Payload.run_id~$": "$.run.id", "TimeoutSeconds": 90,
      "Retry[0].ErrorEquals[3]": "Lambda.TooManyRequestsException"}),
    ("with on_failure, every top-level task catches into it", [{"name": "L", "type": "lambda_invoke", "function": "f"}],
     {"on_failure": {"delete_data": ["staging"]}}, "L", {"Catch[0].Next": "CleanupOnFailure"}),
    ("lambda by ARN, longer timeout",
     [{"name": "L", "type": "lambda_invoke", "function": "arn:aws:lambda:us-east-1:111111111111:function:x"}],
     {"compute": {"lambda": {"timeout_seconds": 300}}}, "L",
     {"Parameters.FunctionName": "arn:aws:lambda:us-east-1:111111111111:function:x", "TimeoutSeconds": 330}),
    ("fargate task", [{"name": "Train", "type": "fargate_task", "task": "training", "args": ["--fast"]}], {}, "Train",
     {"Resource": ECS, "Parameters.LaunchType": "FARGATE", "Parameters.TaskDefinition": f"{PREFIX}-training",
      "Parameters.Cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{PREFIX}-cluster",
      "Parameters.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp": "DISABLED",
      "Parameters.Overrides.ContainerOverrides[0].Name": "training",
      "Parameters.Overrides.ContainerOverrides[0].Command~$":
          "States.Array('--config', 's3://stepkit-example-bucket/predict-age/stepkit/pipeline.json', "
          "'--run-id', $.run.id, '--stage', 'Train', '--fast')",
      "Parameters.PropagateTags": "TASK_DEFINITION", "TimeoutSeconds": 2400, "ResultPath": None,
      "Retry[0].ErrorEquals[0]": "ECS.AmazonECSException", "Retry[0].MaxAttempts": 10,
      "Retry[0].JitterStrategy": "FULL", "Retry[1].ErrorEquals": ["AmazonECS.Unknown"],
      "Retry[1].IntervalSeconds": 30, "Retry[1].MaxAttempts": 5}),
    # A user's image running the user's command: placeholders filled in, the run id and config also in
    # the environment; no --stage (that is stepkit's workers' contract).
    ("fargate task, own command", [{"name": "Export", "type": "fargate_task", "task": "export",
                                    "command": ["python", "export.py", "--day", "{run_id}", "--cfg={config}", "{x}"]}],
     {"compute": {"tasks": {"export": {"cpu": 1, "memory_gb": 2, "timeout_minutes": 10,
                                       "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/export:1"}}}}, "Export",
     {"Parameters.TaskDefinition": f"{PREFIX}-export",
      "Parameters.Overrides.ContainerOverrides[0].Command~$":
          "States.Array('python', 'export.py', '--day', States.Format('{}', $.run.id), "
          "'--cfg=s3://stepkit-example-bucket/predict-age/stepkit/pipeline.json', '\\{x\\}')",
      "Parameters.Overrides.ContainerOverrides[0].Environment": [
          {"Name": "STEPKIT_CONFIG", "Value": "s3://stepkit-example-bucket/predict-age/stepkit/pipeline.json"},
          {"Name": "STEPKIT_RUN_ID", "Value.$": "$.run.id"}]}),
    # stepkit's worker reads its tables by role: --stage tells it which stage (and so which roles) it runs.
    ("fan_out of stepkit's prediction", [IDS, {**FAN, "roles": {"predictions": "human_qa"}}], {}, "Fan",
     {"ItemProcessor.States.FanBatch.Parameters.Overrides.ContainerOverrides[0].Command~$":
          "States.Array('--config', 's3://stepkit-example-bucket/predict-age/stepkit/pipeline.json', '--run-id', "
          "$.run_id, '--batch-id', States.Format('{}', $.batch_id), '--stage', 'Fan')"}),
    ("existing model", [{"name": "Reuse", "type": "existing_model", "run": "run-1"}], {}, "Reuse",
     {"Resource": ECS, "Parameters.TaskDefinition": f"{PREFIX}-training",
      "Parameters.Overrides.ContainerOverrides[0].Command~$":
          "States.Array('--config', 's3://stepkit-example-bucket/predict-age/stepkit/pipeline.json', '--run-id', "
          "$.run.id, '--stage', 'Reuse')"}),
    ("fan_out over inline's 40 -> distributed", [IDS, FAN], {}, "Fan",
     {"Type": "Map", "ItemProcessor.ProcessorConfig.Mode": "DISTRIBUTED",
      "ItemProcessor.ProcessorConfig.ExecutionType": "STANDARD", "MaxConcurrency": 100, "Label": "Fan",
      "ItemsPath": "$.batch_ids.ids", "ItemSelector.batch_id~$": "$$.Map.Item.Value",
      "ResultWriter.Parameters.Bucket": "stepkit-example-bucket",
      "ResultWriter.Parameters.Prefix": "predict-age/map-results", "ToleratedFailurePercentage": 0,
      "ResultPath": None, "ItemProcessor.States.FanBatch.Resource": ECS,
      "ItemProcessor.States.FanBatch.Retry[1].ErrorEquals": ["AmazonECS.Unknown"],
      "ItemProcessor.States.FanBatch.Retry[2].ErrorEquals": ["States.TaskFailed"]}),
    ("fan_out small -> inline", [IDS, FAN], INLINE, "Fan",
     {"ItemProcessor.ProcessorConfig": {"Mode": "INLINE"}, "MaxConcurrency": 20, "ResultPath": None}),
    ("fan_out label and tolerance", [IDS, {**FAN, "label": "Score"}],
     {"batching": {"tolerated_failure_percentage": 5}}, "Fan",
     {"Label": "Score", "ToleratedFailurePercentage": 5}),
    ("athena_ctas", [CTAS], {}, "T",
     {"Resource": ATHENA, "Parameters.WorkGroup": "ai-agent-predict-age",
      "Parameters.QueryExecutionContext.Database": "ai_agent_kb_predict_age",
      "Parameters.ResultConfiguration.OutputLocation": "s3://stepkit-example-bucket/predict-age/athena-results/",
      "TimeoutSeconds": 1800, "ResultPath": None, "Retry[0].ErrorEquals[0]": "Athena.TooManyRequestsException"}),
    ("athena_ctas timeout", [{**CTAS, "timeout_minutes": 5}], {}, "T", {"TimeoutSeconds": 300}),
    ("athena_query", [{"name": "Q", "type": "athena_query", "table": "predictions",
                       "template": "predictions_table.sql.j2"}], {}, "Q",
     {"Resource": ATHENA, "TimeoutSeconds": 600}),
    ("cleanup", [{"name": "C", "type": "cleanup", "delete_data": ["staging"], "drop_tables": ["human_qa"]}], {}, "C",
     {"Resource": LAMBDA, "Parameters.FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{PREFIX}-cleanup",
      "Parameters.Payload.scope": "run", "Parameters.Payload.tables[0].name": "predict_age_human_qa",
      "Parameters.Payload.tables[0].delete_data": False, "Parameters.Payload.tables[1].delete_data": True,
      "Parameters.Payload.tables[1].location":
          "s3://stepkit-example-bucket/predict-age/tables/predict_age_staging_parsed_features_2025q3/"}),
    ("failure path cleans up, then fails", [CTAS], {"on_failure": {"delete_data": ["staging"]}}, "CleanupOnFailure",
     {"Parameters.Payload.scope": "run", "Next": "Failed", "Catch[0].Next": "Failed"}),
    ("failure path is a Fail state", [CTAS], {"on_failure": {"delete_data": ["staging"]}}, "Failed",
     {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}),
]


@pytest.mark.parametrize("case,stages,settings,state,expected", STATES, ids=[c[0] for c in STATES])
def test_state_fields(case, stages, settings, state, expected):
    definition = compile_stages(stages, **settings).definition
    got = {path: get(definition["States"][state], path) for path in expected}
    assert got == expected


@pytest.mark.parametrize("case,stages,settings,absent", [
    ("inline map has no label or writer", [IDS, FAN], INLINE, ["Label", "ResultWriter", "ToleratedFailurePercentage"]),
    ("wait takes no retry or catch", [{"name": "W", "type": "wait", "seconds": 1}], {}, ["Retry", "Catch"]),
], ids=["inline map", "wait"])
def test_fields_left_out(case, stages, settings, absent):
    states = compile_stages(stages, **settings).definition["States"]
    state = states[stages[-1]["name"]]
    assert [k for k in absent if k in state] == []


def test_chunked_ctas_states_chain_in_order():
    ctas = {"name": "Eval", "type": "athena_ctas", "table": "evaluation_features",
            "template": "evaluation_features.sql.j2", "partitioned_by": ["batch_id"], "partitions": "batches"}
    states = compile_stages([ctas]).definition["States"]
    names = [n for n in states if n.startswith("Eval")]
    # Its guard, its prepare (both for a continued run), then the CTAS and its 8 INSERT INTO statements.
    assert names == ["Eval.done", "Eval.prepare", "Eval"] + [f"Eval_Insert{i:02d}" for i in range(1, 9)] + ["Eval.skipped"]
    chain = names[2:-1]
    assert [states[n].get("Next") for n in chain] == chain[1:] + [None]
    assert states[chain[-1]]["End"] is True
    assert states["Eval.prepare"]["Next"] == "Eval" and states["Eval.done"]["Default"] == "Eval"


# --- IAM ----------------------------------------------------------------------------------

def grants(a: Artifacts, role: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for st in a.policies[role].document()["Statement"]:
        res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for action in st["Action"]:
            out.setdefault(action, set()).update(res)
    return out


ARN = f"{REGION}:{ACCOUNT}"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TASK_ROLES = {f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-task", f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-task-execution"}
# A task of the user's own image and module (stepkit cannot know what it writes unless it says).
OWN_TASK = {"compute": {"tasks": {"export": {"cpu": 1, "memory_gb": 2, "timeout_minutes": 10, "module": "my.export",
                                             "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/export:1"}}}}
# (case, stages, settings, role, action, resources granted; None = not granted at all)
IAM = [
    ("fargate: run its task definition", [{"name": "T", "type": "fargate_task", "task": "training"}], {},
     "statemachine", "ecs:RunTask", {f"arn:aws:ecs:{ARN}:task-definition/{PREFIX}-training:*"}),
    ("fargate: pass the two task roles", [{"name": "T", "type": "fargate_task", "task": "training"}], {},
     "statemachine", "iam:PassRole", TASK_ROLES),
    ("fargate: the managed rule", [{"name": "T", "type": "fargate_task", "task": "training"}], {},
     "statemachine", "events:PutRule", {f"arn:aws:events:{ARN}:rule/StepFunctionsGetEventsForECSTaskRule"}),
    ("fargate: tag its tasks", [{"name": "T", "type": "fargate_task", "task": "training"}], {},
     "statemachine", "ecs:TagResource", {f"arn:aws:ecs:{ARN}:task/{PREFIX}-cluster/*"}),
    ("fargate: pull its image", [{"name": "T", "type": "fargate_task", "task": "training"}], {},
     "task_execution", "ecr:BatchGetImage", {f"arn:aws:ecr:{ARN}:repository/{PREFIX}-training"}),
    # Re-scoring reads another pipeline's runs, and only those, only to read.
    ("existing model: reads the trainer's runs", [{"name": "R", "type": "existing_model", "from_prefix": "ml/age"}],
     {}, "task", "s3:GetObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/*",
                                  "arn:aws:s3:::stepkit-example-bucket/ml/age/runs/*"}),
    ("existing model: writes only its own prefix", [{"name": "R", "type": "existing_model", "from_prefix": "ml/age"}],
     {}, "task", "s3:PutObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/runs/*"}),
    # Writes go only where each role writes: never stepkit/ (the worker config, the Lambda code), which deploy owns.
    ("fargate: an undeclared module of the user's writes tables and runs",
     [{"name": "T", "type": "fargate_task", "task": "export"}], OWN_TASK, "task", "s3:PutObject",
     {"arn:aws:s3:::stepkit-example-bucket/predict-age/tables/*",
      "arn:aws:s3:::stepkit-example-bucket/predict-age/runs/*"}),
    ("fargate: stepkit's training writes the run's models only", [{"name": "T", "type": "fargate_task",
                                                                   "task": "training"}],
     {}, "task", "s3:PutObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/runs/*"}),
    ("fan-out: stepkit's prediction writes the table of its role",
     [IDS, {**FAN, "roles": {"predictions": "human_qa"}}], {}, "task", "s3:PutObject",
     {"arn:aws:s3:::stepkit-example-bucket/predict-age/tables/predict_age_human_qa/*"}),
    ("fargate: a task that declares its model writes runs only",
     [{"name": "T", "type": "fargate_task", "task": "training", "reads": [], "writes": ["model"]}], {},
     "task", "s3:PutObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/runs/*"}),
    ("fargate: a task that declares it writes nothing writes nothing",
     [{"name": "T", "type": "fargate_task", "task": "export", "reads": [], "writes": []}], OWN_TASK, "task",
     "s3:PutObject", None),
    ("fargate: a file of the user's (not a table) is written under runs only",
     [{"name": "T", "type": "fargate_task", "task": "export", "reads": [], "writes": ["activity_csv"]}], OWN_TASK,
     "task", "s3:PutObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/runs/*"}),
    ("fan-out: writes its declared table only", [IDS, {**FAN, "reads": [], "writes": ["predictions"]}], {},
     "task", "s3:PutObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/tables/predict_age_ml_predictions/*"}),
    ("fargate: task reads everything under the prefix", [{"name": "T", "type": "fargate_task", "task": "training"}],
     {}, "task", "s3:GetObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/*"}),
    ("athena: writes tables and query results", [CTAS], {}, "statemachine", "s3:PutObject",
     {"arn:aws:s3:::stepkit-example-bucket/predict-age/tables/*",
      "arn:aws:s3:::stepkit-example-bucket/predict-age/athena-results/*"}),
    ("distributed map: writes its results", [IDS, FAN], {}, "statemachine", "s3:PutObject",
     {"arn:aws:s3:::stepkit-example-bucket/predict-age/map-results/*"}),
    ("distributed map: redrives its Map Run's children", [IDS, FAN], {}, "statemachine", "states:RedriveExecution",
     {f"arn:aws:states:{ARN}:execution:{MACHINE}/Fan:*"}),
    ("inline map: nothing to redrive", [IDS, FAN], INLINE, "statemachine", "states:RedriveExecution", None),
    ("no KMS key: no KMS grants", [CTAS], {}, "statemachine", "kms:Decrypt", None),
    ("KMS key: Athena may use it", [CTAS], {"aws": {"kms_key_arn": KEY}}, "statemachine", "kms:GenerateDataKey", {KEY}),
    ("KMS key: the tasks may use it", [{"name": "T", "type": "fargate_task", "task": "training"}],
     {"aws": {"kms_key_arn": KEY}}, "task", "kms:Decrypt", {KEY}),
    ("distributed map: start itself", [IDS, FAN], {}, "statemachine", "states:StartExecution",
     {f"arn:aws:states:{ARN}:stateMachine:{MACHINE}"}),
    ("distributed map: its children", [IDS, FAN], {}, "statemachine", "states:DescribeExecution",
     {f"arn:aws:states:{ARN}:execution:{MACHINE}/*", f"arn:aws:states:{ARN}:execution:{MACHINE}:*"}),
    ("inline map: no child executions", [IDS, FAN], INLINE, "statemachine", "states:StartExecution", None),
    ("athena: its workgroup", [CTAS], {}, "statemachine", "athena:StartQueryExecution",
     {f"arn:aws:athena:{ARN}:workgroup/ai-agent-predict-age"}),
    ("athena: writes only its own database", [CTAS], {}, "statemachine", "glue:CreateTable",
     {f"arn:aws:glue:{ARN}:catalog", f"arn:aws:glue:{ARN}:database/ai_agent_kb_predict_age",
      f"arn:aws:glue:{ARN}:table/ai_agent_kb_predict_age/*"}),
    ("athena: reads the source", [CTAS], {}, "statemachine", "s3:GetObject",
     {"arn:aws:s3:::stepkit-example-bucket/predict-age/*",
      "arn:aws:s3:::stepkit-example-bucket/kb/person_profiles_2025q3/*"}),
    ("athena: no PassRole", [CTAS], {}, "statemachine", "iam:PassRole", None),
    ("lambda: the function and its versions", [{"name": "L", "type": "lambda_invoke", "function": "notify"}], {},
     "statemachine", "lambda:InvokeFunction",
     {f"arn:aws:lambda:{ARN}:function:{PREFIX}-notify", f"arn:aws:lambda:{ARN}:function:{PREFIX}-notify:*"}),
    ("a stage that writes a table: its prepare state invokes the cleanup function", [CTAS], {}, "statemachine",
     "lambda:InvokeFunction",
     {f"arn:aws:lambda:{ARN}:function:{PREFIX}-cleanup", f"arn:aws:lambda:{ARN}:function:{PREFIX}-cleanup:*"}),
    ("one run at a time: list the machine's executions", [{"name": "W", "type": "wait", "seconds": 1}], {},
     "statemachine", "states:ListExecutions", {f"arn:aws:states:{ARN}:stateMachine:{MACHINE}"}),
    ("cleanup: deletes only table files", [{"name": "C", "type": "cleanup", "delete_data": ["staging"]}], {},
     "lambda", "s3:DeleteObject", {"arn:aws:s3:::stepkit-example-bucket/predict-age/tables/*"}),
    ("cleanup: drops only its own tables", [{"name": "C", "type": "cleanup", "delete_data": ["staging"]}], {},
     "lambda", "glue:DeleteTable", {f"arn:aws:glue:{ARN}:catalog", f"arn:aws:glue:{ARN}:database/ai_agent_kb_predict_age",
                                    f"arn:aws:glue:{ARN}:table/ai_agent_kb_predict_age/*"}),
    ("wait: no task permissions", [{"name": "W", "type": "wait", "seconds": 1}], {"on_failure": {"delete_data": []}},
     "statemachine", "ecs:RunTask", None),
]


@pytest.mark.parametrize("case,stages,settings,role,action,resources", IAM, ids=[c[0] for c in IAM])
def test_iam_grants(case, stages, settings, role, action, resources):
    assert grants(compile_stages(stages, **settings), role).get(action) == resources


# --- SQL ------------------------------------------------------------------------------------

def ctas_props(sql: str) -> dict[str, Any]:
    tree = sqlglot.parse_one(sql.replace("${run_id}", "r"), read="athena")
    out: dict[str, Any] = {}
    for p in tree.args["properties"].expressions:
        key = {exp.FileFormatProperty: "format", exp.PartitionedByProperty: "partitioned_by"}.get(type(p)) or p.name
        value = p.args.get("value") or p.this
        out[key] = [v.name for v in value.expressions] if isinstance(value, exp.Array) else (
            int(value.this) if isinstance(value, exp.Literal) and not value.is_string else value.name)
    return out


LOCATION = "s3://stepkit-example-bucket/predict-age/tables/predict_age_real_training_targets_14m/r/"
EVAL = {"name": "Eval", "type": "athena_ctas", "table": "evaluation_features", "template": "evaluation_features.sql.j2"}
# (case, stage, settings, statement kinds, properties of the first statement)
SQL = [
    ("defaults", CTAS, {}, ["ctas"],
     {"format": "PARQUET", "write_compression": "SNAPPY", "external_location": LOCATION}),
    ("orc + zstd", {**CTAS, "format": "orc", "compression": "zstd"}, {}, ["ctas"],
     {"format": "ORC", "write_compression": "ZSTD", "external_location": LOCATION}),
    ("bucketed", {**CTAS, "bucketed_by": ["id"], "bucket_count": 10}, {}, ["ctas"],
     {"format": "PARQUET", "write_compression": "SNAPPY", "external_location": LOCATION,
      "bucketed_by": ["id"], "bucket_count": 10}),
    ("898 partitions -> CTAS + 8 INSERTs", {**EVAL, "partitioned_by": ["batch_id"], "partitions": "batches"}, {},
     ["ctas"] + ["insert"] * 8, {"partitioned_by": ["batch_id"]}),
    ("100 partitions -> one CTAS", {**EVAL, "partitioned_by": ["batch_id"], "partitions": "batches"},
     {"batching": {"batches": 100}}, ["ctas"], {"partitioned_by": ["batch_id"]}),
    ("101 partitions -> CTAS + 1 INSERT", {**EVAL, "partitioned_by": ["batch_id"], "partitions": "batches"},
     {"batching": {"batches": 101}}, ["ctas", "insert"], {"partitioned_by": ["batch_id"]}),
    ("external table", {"name": "Q", "type": "athena_query", "table": "predictions",
                        "template": "predictions_table.sql.j2"}, {}, ["ddl"], None),
]


@pytest.mark.parametrize("case,stage,settings,kinds,props", SQL, ids=[c[0] for c in SQL])
def test_sql(case, stage, settings, kinds, props):
    statements = [s for s in compile_stages([stage], **settings).statements if s.stage == stage["name"]]
    assert [s.kind for s in statements] == kinds
    if props is None:
        return
    got = ctas_props(statements[0].sql)
    assert {k: got.get(k) for k in props} == props


def test_insert_chunks_read_disjoint_groups():
    stage = {**EVAL, "partitioned_by": ["batch_id"], "partitions": "batches"}
    statements = [s for s in compile_stages([stage]).statements if s.stage == stage["name"]]
    groups = []
    for st in statements:
        where = sqlglot.parse_one(st.sql.replace("${run_id}", "r"), read="athena").find(exp.Where)
        (eq,) = [e for e in where.find_all(exp.EQ) if e.left.name == "batch_group"]
        groups.append(int(eq.right.this))
    assert groups == list(range(9))


@pytest.mark.parametrize("pipeline", ["predict_age", "predict_income"])
def test_no_role_may_write_what_deploy_owns(pipeline):
    """stepkit/ holds the worker config every task reads, the Lambda code and the templates: only
    `stepkit deploy` writes it. No compiled role's write reaches it, nor the prefix as a whole."""
    from fnmatch import fnmatchcase

    from stepkit.cli import _variables
    from stepkit.compiler.build import compile_file

    a = compile_file(ROOT / "pipelines" / f"{pipeline}.yaml", _variables((), str(ROOT / "pipelines" / "example.env")),
                     check_sql=False)
    prefix = f"arn:aws:s3:::{a.context.p.aws.bucket}/{a.context.p.aws.prefix}"
    for role in a.policies:
        for resource in grants(a, role).get("s3:PutObject", set()):
            assert not fnmatchcase(f"{prefix}/stepkit/pipeline.json", resource), (role, resource)
            assert not fnmatchcase(f"{prefix}/stepkit/code/cleanup-0.zip", resource), (role, resource)


# The cleanup function's timeout follows from what it may delete (tables x batches x files, x runs for
# a pre-clean of every run), never below the spec's and never past Lambda's 900 s.
CLEAN_ALL = {"name": "C", "type": "cleanup", "delete_data": ["staging", "evaluation_features"], "scope": "all"}
CLEAN_RUN = {"name": "C", "type": "cleanup", "delete_data": ["staging"]}


@pytest.mark.parametrize("stages, settings, seconds", [
    # 1 table x 898 batches x 8 files = 7,184 objects -> 30 + 14 s; the spec's 60 s is more.
    ([CLEAN_RUN], {"on_failure": {"delete_data": []}}, 60),
    # 2 tables x 898 x 8 x 4 runs = 57,472 objects -> 30 + 114 s.
    ([CLEAN_ALL], {"on_failure": {"delete_data": []}}, 144),
    ([CLEAN_ALL], {"on_failure": {"delete_data": []}, "compute": {"lambda": {"timeout_seconds": 600}}}, 600),
    ([CLEAN_ALL], {"on_failure": {"delete_data": []}, "batching": {"batches": 9000, "max_concurrency": 100}}, 900),
    # The failure path's cleanup counts too: 5 tables of this run -> 30 + 71 s.
    ([CLEAN_RUN], {"on_failure": {"delete_data": ["staging", "training_features", "training_targets",
                                                  "evaluation_features", "predictions"]}}, 101),
], ids=["spec-enough", "pre-clean-of-every-run", "spec-larger", "capped", "failure-path"])
def test_cleanup_timeout_follows_the_work(stages, settings, seconds):
    from stepkit.compiler import template as tpl

    a = compile_stages(stages, **settings)
    state = a.definition["States"]["C"]
    assert state["TimeoutSeconds"] == seconds + 30  # the invoke's own margin
    assert tpl.build(a)["Resources"]["CleanupFunction"]["Properties"]["Timeout"] == seconds
    # Deleting again is harmless: any failure (a timeout included) is retried, and goes on where it stopped.
    assert state["Retry"][-1]["ErrorEquals"] == ["States.TaskFailed"] and state["Retry"][-1]["MaxAttempts"] == 3
