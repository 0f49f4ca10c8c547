"""`stepkit cost RUN` on an AWS run, against moto, and `stepkit plan --aws` (quota, subnets, source size).

What moto cannot produce is put in by the test, and each such place says so:
- Athena: moto runs no SQL and reports zero statistics. The test starts the run's statements
  (the compiled SQL with the run id) through the Athena API, then fills in the bytes scanned and
  engine time moto reports for them (by wrapping moto's GetQueryExecution response, in the
  moto server this process runs).
- ECS: moto 5.x fails RunTask with awsvpc networking (its NetworkInterface has no
  private_dns_name): the test gives moto that attribute. moto reports no task timestamps: the
  test sets createdAt / pullStartedAt / pullStoppedAt / stoppedAt on moto's task objects.
- Service Quotas: moto 5.x knows only the `vpc` service's quotas. GetServiceQuota for Fargate's
  L-3032A538 fails there as it would for an unknown quota: the test checks that one-line error;
  reading a real value is covered by botocore's Stubber, which checks the call against the API model.
- Step Functions: moto executes the compiled state machine (an inline Map, as tests/aws/test_ops.py
  does); the run fails at its first Lambda (moto has no cleanup function). Its history is real.
"""
from __future__ import annotations

import datetime as dt
import json
import re

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from stepkit.cli import main
from tests.aws.conftest import BUCKET, ENV_FILE, REGION
from tests.aws.test_ops import INLINE, MACHINE_ARN, TAGS, _moto_config, wait_done
from tests.aws.variants import compile_variant, write_variant

ACCOUNT = "123456789012"
GB = 10 ** 9
UTC = dt.timezone.utc


@pytest.fixture
def executing(aws):
    _moto_config(aws, True)
    yield aws
    _moto_config(aws, False)


@pytest.fixture
def injected(monkeypatch):
    """Statistics moto cannot produce, by query id; and the ENI attribute moto's RunTask needs."""
    from moto.athena.responses import AthenaResponse
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    stats: dict[str, tuple[int, int]] = {}
    original = AthenaResponse.get_query_execution

    def get_query_execution(self):
        body = json.loads(original(self))
        qid = body["QueryExecution"]["QueryExecutionId"]
        if qid in stats:
            scanned, ms = stats[qid]
            body["QueryExecution"]["Statistics"].update(DataScannedInBytes=scanned, EngineExecutionTimeInMillis=ms,
                                                        TotalExecutionTimeInMillis=ms + 500)
        return json.dumps(body)

    monkeypatch.setattr(AthenaResponse, "get_query_execution", get_query_execution)
    if not hasattr(NetworkInterface, "private_dns_name"):
        monkeypatch.setattr(NetworkInterface, "private_dns_name",
                            property(lambda self: f"ip-{self.private_ip_address.replace('.', '-')}.ec2.internal"),
                            raising=False)
    return stats


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _network():
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/26")["Subnet"]["SubnetId"]  # 59 free
    sg = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    return subnet, sg


def _run_task(ecs, cluster, family, run_id, subnet, sg, created, pulled_s, pull_s, ran_s):
    from moto.ecs.models import ecs_backends

    arn = ecs.run_task(cluster=cluster, taskDefinition=family, launchType="FARGATE",
                       overrides={"containerOverrides": [{"name": "worker", "command": ["--run-id", run_id]}]},
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [sg]}}
                       )["tasks"][0]["taskArn"]
    task = ecs_backends[ACCOUNT][REGION].tasks[cluster][arn]
    task.created_at = created
    task.pull_started_at = created + dt.timedelta(seconds=pulled_s)
    task.pull_stopped_at = task.pull_started_at + dt.timedelta(seconds=pull_s)
    task.stopped_at = task.pull_started_at + dt.timedelta(seconds=ran_s)
    ecs.stop_task(cluster=cluster, task=arn, reason="done")
    return arn


def test_cost_of_an_aws_run_beside_the_plan(executing, injected, tmp_path, variables):
    from stepkit.ir import asl
    from stepkit.plan.cost import statements

    a = compile_variant(tmp_path, variables, INLINE)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.create_state_machine(name="fargate-predict-age-pipeline", definition=asl.render(a.definition),
                             roleArn=f"arn:aws:iam::{ACCOUNT}:role/ai-agent-predict-age-sfn", tags=TAGS)
    sfn.start_execution(stateMachineArn=MACHINE_ARN, name="run-a", input="{}")
    done = wait_done(MACHINE_ARN.replace(":stateMachine:", ":execution:") + ":run-a")
    history = sfn.get_execution_history(executionArn=done["executionArn"])["events"]
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))

    # The run's Athena statements (and one of another run, which cost must leave out).
    athena = boto3.client("athena", region_name=REGION)
    athena.create_work_group(Name=a.context.p.aws.workgroup)
    sqls = statements(a.definition, "run-a")
    scanned = {}
    for i, (state, sql) in enumerate(sorted(sqls.items())):
        qid = athena.start_query_execution(QueryString=sql, WorkGroup=a.context.p.aws.workgroup)["QueryExecutionId"]
        scanned[state] = (i + 1) * GB
        injected[qid] = (scanned[state], 2000)  # moto reports zero: see the module docstring
    other = athena.start_query_execution(QueryString=sqls["StagingFeatures"].replace("run-a", "run-b"),
                                         WorkGroup=a.context.p.aws.workgroup)["QueryExecutionId"]
    injected[other] = (999 * GB, 1000)

    # Its Fargate tasks: one training task, 7 prediction batches; one task of another run.
    ecs = boto3.client("ecs", region_name=REGION)
    cluster = a.context.names.cluster
    ecs.create_cluster(clusterName=cluster)
    for task in ("training", "prediction"):
        ecs.register_task_definition(family=a.context.names.task_family(task), requiresCompatibilities=["FARGATE"],
                                     networkMode="awsvpc", cpu="1024", memory="2048",
                                     containerDefinitions=[{"name": "worker", "image": "i", "cpu": 1024, "memory": 2048}])
    subnet, sg = _network()
    t0 = dt.datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    _run_task(ecs, cluster, "ai-agent-predict-age-training", "run-a", subnet, sg, t0, 40, 25, 300)
    for b in range(7):
        _run_task(ecs, cluster, "ai-agent-predict-age-prediction", "run-a", subnet, sg, t0, 20, 15, 45)
    _run_task(ecs, cluster, "ai-agent-predict-age-prediction", "run-b", subnet, sg, t0, 20, 15, 4000)

    pipeline = write_variant(tmp_path, INLINE)
    code, out = cli("cost", "run-a", "--plan", str(pipeline), "--env-file", str(ENV_FILE))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("run run-a: FAILED")
    m = re.search(r"Athena: (\d+) queries, ([\d,.]+) GB scanned \(plan: ([\d,.]+) GB\)", out)
    assert m and int(m.group(1)) == len(sqls), out
    assert float(m.group(2).replace(",", "")) == pytest.approx(sum(scanned.values()) / GB, abs=0.01)
    for state in sqls:  # each query is named by the state that ran it
        assert any(line.strip().startswith(state + " ") for line in lines), state
    staging = next(line for line in lines if line.strip().startswith("StagingFeatures "))
    # GB/s: its injected bytes (in GiB) over 2.0 s of engine time
    assert staging.split()[4] == f"{scanned['StagingFeatures'] / 1024 ** 3 / 2.0:.2f}"
    assert re.search(r"Fargate ai-agent-predict-age-training: 1 task\(s\), 300 task-seconds billed, "
                     r"start-up 40 s \(fargate_provisioning_s\), image pull 25 s \(fargate_pull_s\)", out), out
    # 7 batches of 45 s each are billed the one-minute minimum; run-b's task is not this run's.
    assert re.search(r"Fargate ai-agent-predict-age-prediction: 7 task\(s\), 420 task-seconds billed", out), out
    assert f"Step Functions: {entered:,} transitions (0 retries)" in out


def test_cost_of_an_unknown_run_is_one_line(aws):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.create_state_machine(name="fargate-predict-age-pipeline",
                             definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}),
                             roleArn=f"arn:aws:iam::{ACCOUNT}:role/r", tags=TAGS)
    code, out = cli("cost", "no-such-run", "--region", REGION)
    assert code == 1
    assert out.strip().splitlines() == [out.strip()] and "states:DescribeExecution" in out


def test_plan_reads_subnets_and_source_size_and_says_moto_has_no_fargate_quota(aws, tmp_path):
    subnet, sg = _network()
    s3 = boto3.client("s3", region_name=REGION)
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"kb/person_profiles_2025q3/part-{i}.json", Body=b"x" * 1000)
    pipeline = write_variant(tmp_path, {"aws.network.subnets": [subnet], "aws.network.security_groups": [sg]})
    # moto 5.x serves only the vpc service's quotas: it answers GetServiceQuota for Fargate's with
    # NoSuchResource (as AWS does for a quota with no applied value); stepkit then asks for AWS's
    # default, an action moto does not implement (HTTP 500): one line naming it.
    code, out = cli("plan", str(pipeline), "--env-file", str(ENV_FILE), "--aws", "--brief")
    assert code == 1 and out.startswith("servicequotas:GetAWSDefaultServiceQuota: ") and len(out.strip().splitlines()) == 1, out
    code, out = cli("plan", str(pipeline), "--env-file", str(ENV_FILE), "--aws", "--brief", "--vcpu-quota", "500",
                    "--json")
    plan = json.loads(out[: out.rindex("}") + 1])
    assert plan["inputs"]["source_bytes"] == 3000 and plan["inputs"]["free_ips"] == 59
    # 100 tasks at once need 100 addresses; the /26 has 59 free: a failed check, located.
    assert code == 1
    assert re.search(r"variant.yaml:\d+:\d+: aws.network.subnets: 100 tasks at once need 100 addresses; "
                     r"the subnets have 59 free", out), out


QUOTA = {"ServiceCode": "fargate", "QuotaCode": "L-3032A538"}


@pytest.mark.parametrize("applied,default,value,basis", [
    (4000.0, None, 4000, "the account's quota L-3032A538 in us-east-1"),
    (None, 6.0, 6, "AWS's default for L-3032A538"),  # no applied value: GetServiceQuota says NoSuchResource
])
def test_fargate_quota_read_through_service_quotas(aws, applied, default, value, basis):
    from stepkit.aws.session import Session
    from stepkit.plan.inputs import fargate_quota

    session = Session(region=REGION)
    client = session.client("service-quotas")
    with Stubber(client.raw) as stub:
        if applied is not None:
            stub.add_response("get_service_quota", {"Quota": {**QUOTA, "Value": applied}}, QUOTA)
        else:
            stub.add_client_error("get_service_quota", "NoSuchResourceException", "no applied value", 400,
                                  expected_params=QUOTA)
            stub.add_response("get_aws_default_service_quota", {"Quota": {**QUOTA, "Value": default}}, QUOTA)
        got, why = fargate_quota(session)
    assert got == value and why.startswith(basis)
