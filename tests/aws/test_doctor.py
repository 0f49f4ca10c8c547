"""`stepkit doctor` and the checks deploy makes before changing anything: each check failing, then passing,
on moto. Where moto lacks an API (Service Quotas has no Fargate quota; ValidateStateMachineDefinition and
IMPORT change sets are not implemented) the test says so and the decision is tested on the API's
documented response shape.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from click.testing import CliRunner

from stepkit.aws import doctor as dr
from stepkit.cli import main
from tests.aws.conftest import BUCKET, ENV_FILE, PIPELINE, REGION
from tests.aws.variants import write_variant

ACCOUNT = "123456789012"


def run_doctor(pipeline=PIPELINE, *args: str) -> tuple[int, dict[str, list[str]]]:
    result = CliRunner().invoke(main, ["doctor", str(pipeline), "--env-file", str(ENV_FILE), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    by_check: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        level, _, rest = line.partition(" ")
        check, _, message = rest.strip().partition(": ")
        by_check.setdefault(check, []).append(f"{level} {message}")
    return result.exit_code, by_check


def client(name: str):
    return boto3.client(name, region_name=REGION)


# --- the ECS service-linked role --------------------------------------------------------------

def test_a_new_account_lacks_the_ecs_role_and_doctor_can_make_it(bare_account):
    code, found = run_doctor()
    assert code == 1 and found["ecs-role"] == [
        "FAIL AWSServiceRoleForECS is missing (a new account has none) and creating the ECS cluster fails without it: "
        "run `aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com`, or `stepkit doctor PIPELINE "
        "--create-ecs-role`"]
    _, found = run_doctor(PIPELINE, "--create-ecs-role")
    assert found["ecs-role"][0].startswith("ok ")
    assert client("iam").list_roles(PathPrefix="/aws-service-role/ecs.amazonaws.com/")["Roles"]


def test_deploy_stops_before_anything_without_the_ecs_role(bare_account):
    from tests.aws.test_deploy import deploy

    code, out = deploy()
    assert code == 1 and out.strip().splitlines()[-1].startswith("ecs-role: AWSServiceRoleForECS is missing")
    assert client("cloudformation").list_stacks()["StackSummaries"] == []


# --- resources that already exist under the stack's names ------------------------------------

@pytest.fixture
def leftovers(aws):
    """What a deleted stack retained, plus the seed's hand-made Lambda and state machine."""
    client("logs").create_log_group(logGroupName="/stepkit/ai-agent-predict-age/training")
    client("ecr").create_repository(repositoryName="ai-agent-predict-age-prediction")
    client("glue").create_database(DatabaseInput={"Name": "ai_agent_kb_predict_age"})
    client("stepfunctions").create_state_machine(
        name="fargate-predict-age-pipeline", roleArn=f"arn:aws:iam::{ACCOUNT}:role/hand-made",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
    return aws


def test_doctor_names_each_existing_resource_and_what_to_do(leftovers):
    code, found = run_doctor()
    assert code == 1
    assert sorted(found["existing"]) == sorted([
        "FAIL AWS::Glue::Database ai_agent_kb_predict_age (Database) already exists: import it (below)",
        "FAIL AWS::ECR::Repository ai-agent-predict-age-prediction (PredictionRepository) already exists: import it (below)",
        "FAIL AWS::StepFunctions::StateMachine fargate-predict-age-pipeline (StateMachine) already exists: delete it: "
        "aws stepfunctions delete-state-machine --state-machine-arn "
        "arn:aws:states:us-east-1:123456789012:stateMachine:fargate-predict-age-pipeline  (its run history goes with it)",
        "FAIL AWS::Logs::LogGroup /stepkit/ai-agent-predict-age/training (TrainingLogGroup) already exists: import it (below)",
    ])


def test_deploy_stops_with_the_import_commands_and_changes_nothing(leftovers, tmp_path, monkeypatch):
    from tests.aws.test_deploy import deploy
    from tests.aws.test_template import lint

    monkeypatch.chdir(tmp_path)
    code, out = deploy()
    assert code == 1
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("cannot create stack"))
    assert lines[start] == ("cannot create stack ai-agent-predict-age: 4 resource(s) it would create already exist, and "
                            "CloudFormation would fail half-way; nothing was changed:")
    create, execute = lines[-3].strip(), lines[-2].strip()
    assert create.startswith("aws cloudformation create-change-set --stack-name ai-agent-predict-age "
                             "--change-set-name stepkit-import --change-set-type IMPORT --template-url https://")
    assert create.endswith("--resources-to-import file://out/ai-agent-predict-age/import-resources.json --tags "
                           "Key=stepkit:managed-by,Value=stepkit Key=stepkit:pipeline,Value=predict-age")
    assert execute == ("aws cloudformation execute-change-set --stack-name ai-agent-predict-age "
                       "--change-set-name stepkit-import")
    assert lines[-1].strip().startswith("or give the pipeline another resource_prefix")
    to_import = json.loads((tmp_path / "out" / "ai-agent-predict-age" / "import-resources.json").read_text())
    assert sorted((e["LogicalResourceId"], json.dumps(e["ResourceIdentifier"])) for e in to_import) == [
        ("Database", '{"DatabaseName": "ai_agent_kb_predict_age"}'),
        ("PredictionRepository", '{"RepositoryName": "ai-agent-predict-age-prediction"}'),
        ("TrainingLogGroup", '{"LogGroupName": "/stepkit/ai-agent-predict-age/training"}')]
    # The import template is the stack's own resources, cut to those three (retained, as an import needs).
    key = create.split("--template-url ")[1].split()[0].split(".amazonaws.com/")[1]
    template = json.loads(client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert sorted(template["Resources"]) == ["Database", "PredictionRepository", "TrainingLogGroup"]
    assert all(r["DeletionPolicy"] == "Retain" for r in template["Resources"].values())
    assert lint(template) == []
    # Nothing changed: no stack, no new resource (moto has no IMPORT change sets to go further).
    assert client("cloudformation").list_stacks()["StackSummaries"] == []
    assert client("lambda").list_functions()["Functions"] == []


def test_a_stack_that_owns_its_resources_meets_none(aws):
    from tests.aws.test_deploy import deploy

    assert deploy()[0] == 0
    _, found = run_doctor()
    assert found["existing"] == ["ok no resource the stack creates exists yet under its name"]


# --- the source table -------------------------------------------------------------------------

def _source(columns: list[tuple[str, str]], location: str = f"s3://{BUCKET}/kb/person_profiles_2025q3/") -> None:
    glue = client("glue")
    glue.create_database(DatabaseInput={"Name": "ai_agent_kb"})
    glue.create_table(DatabaseName="ai_agent_kb", TableInput={"Name": "kb_person_profiles_2025q3", "StorageDescriptor": {
        "Columns": [{"Name": n, "Type": t} for n, t in columns], "Location": location}})


@pytest.mark.parametrize("columns, location, expected", [
    (None, None, "FAIL ai_agent_kb.kb_person_profiles_2025q3 does not exist: create it (an external table over "
                 "s3://stepkit-example-bucket/kb/person_profiles_2025q3/) or fix source.table / source.database"),
    ([("person_id", "bigint"), ("profile_json", "string")], None,
     "FAIL ai_agent_kb.kb_person_profiles_2025q3: person_id is bigint, the spec says string: fix source.id_column / "
     "id_type / document_column, or the table"),
    ([("person_id", "string"), ("profile", "string")], None,
     "FAIL ai_agent_kb.kb_person_profiles_2025q3: no column profile_json (it has person_id, profile): fix "
     "source.id_column / id_type / document_column, or the table"),
    ([("person_id", "string"), ("profile_json", "string")], "s3://elsewhere/profiles/",
     "warn ai_agent_kb.kb_person_profiles_2025q3 reads s3://elsewhere/profiles/ but source.location is "
     "s3://stepkit-example-bucket/kb/person_profiles_2025q3/: the roles may read only source.location; make them "
     "the same"),
    ([("person_id", "varchar(36)"), ("profile_json", "string")], None,
     "ok ai_agent_kb.kb_person_profiles_2025q3: person_id (varchar(36)) and profile_json (string)"),
], ids=["missing", "wrong-type", "missing-column", "other-location", "ok"])
def test_the_source_table(aws, columns, location, expected):
    if columns is not None:
        _source(columns, *([location] if location else []))
    assert run_doctor()[1]["source-table"] == [expected]


# --- subnets and their way out -------------------------------------------------------------------

def _network(tmp_path, cidrs: list[tuple[str, str]], route: str | None = None, endpoints: tuple[str, ...] = (),
             public_ip: bool = False):
    """A VPC with subnets (CIDR, AZ), one route table on all of them, and the pipeline variant using them."""
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=c, AvailabilityZone=az)["Subnet"]["SubnetId"] for c, az in cidrs]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    for s in subnets:
        ec2.associate_route_table(RouteTableId=table, SubnetId=s)
    if route == "igw":
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    if route == "nat":
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=eip)["NatGateway"]["NatGatewayId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    for service in endpoints:
        kind = "Gateway" if service == "s3" else "Interface"
        extra = {"RouteTableIds": [table]} if kind == "Gateway" else {"SubnetIds": subnets}
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.{service}", VpcEndpointType=kind, **extra)
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    return write_variant(tmp_path, {"aws.network": {"subnets": subnets, "security_groups": [group],
                                                    "assign_public_ip": public_ip}})


TWO_AZ = [("10.0.0.0/24", "us-east-1a"), ("10.0.1.0/24", "us-east-1b")]
NO_WAY_OUT = ("has no route to the internet and no VPC endpoint for ecr.api, ecr.dkr, logs, s3: tasks cannot pull "
              "images or write logs; add a NAT gateway, or those endpoints (s3 as a gateway endpoint on this subnet's "
              "route table)")


@pytest.mark.parametrize("cidrs, route, endpoints, public_ip, expect", [
    (TWO_AZ, None, (), False, [NO_WAY_OUT]),
    (TWO_AZ, None, ("ecr.api", "ecr.dkr", "logs"), False, ["no VPC endpoint for s3"]),
    (TWO_AZ, None, ("ecr.api", "ecr.dkr", "logs", "s3"), False, ["ok"]),
    (TWO_AZ, "igw", (), False, ["routes to an internet gateway but tasks get no public IP"]),
    (TWO_AZ, "igw", (), True, ["ok"]),
    (TWO_AZ, "nat", (), False, ["ok"]),
], ids=["private-nothing", "endpoints-but-s3", "endpoints", "igw-no-public-ip", "igw-public-ip", "nat"])
def test_the_way_out_of_the_subnets(aws, tmp_path, cidrs, route, endpoints, public_ip, expect):
    code, found = run_doctor(_network(tmp_path, cidrs, route, endpoints, public_ip))
    network = found["network"]
    assert len(network) == 2  # one line per subnet
    assert all(any(e == "ok" and line.startswith("ok ") or e in line for e in expect) for line in network), network
    assert found["subnets"][0].startswith("ok ") and len(found["subnets"]) == 1


def test_subnets_too_small_or_in_one_zone(aws, tmp_path):
    # A /28 has 11 free addresses (AWS keeps 5), 10 once the NAT gateway has one: too few for 100 batches + 1.
    code, found = run_doctor(_network(tmp_path, [("10.0.0.0/28", "us-east-1a")], "nat"))
    assert found["subnets"] == [
        "FAIL 10 free addresses for 101 tasks at once (max_concurrency + 1, one ENI each): add subnets to "
        "aws.network.subnets or lower batching.max_concurrency",
        "warn all in us-east-1a: a capacity shortage there stops every task; add a subnet in a second Availability Zone"]


# --- the bucket's encryption -------------------------------------------------------------------

@pytest.mark.parametrize("kind, spec_key, level", [
    ("none", False, "ok"), ("AES256", False, "ok"), ("aws/s3", False, "ok"), ("customer", False, "FAIL"),
    ("customer", True, "ok"),
])
def test_a_customer_key_on_the_bucket_needs_kms_key_arn(aws, tmp_path, kind, spec_key, level):
    s3, kms = client("s3"), client("kms")
    key_arn = None
    if kind != "none":
        default = {"SSEAlgorithm": "AES256"}
        if kind == "aws/s3":
            default = {"SSEAlgorithm": "aws:kms"}
        if kind == "customer":
            key_arn = kms.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
            default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
        s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": default}]})
    pipeline = write_variant(tmp_path, {"aws.kms_key_arn": key_arn}) if spec_key else PIPELINE
    lines = run_doctor(pipeline)[1]["encryption"]
    assert [line.split()[0] for line in lines] == [level]
    if level == "FAIL":
        assert lines[0].endswith(f"set aws.kms_key_arn: {key_arn} so the state machine and task roles may use it "
                                 "(kms:Decrypt, kms:GenerateDataKey), else every read and write fails with AccessDenied")


# --- Lake Formation --------------------------------------------------------------------------------

def test_lake_formation_mode_needs_grants(aws):
    assert run_doctor()[1]["lake-formation"] == ["ok IAM access control: no Lake Formation grants needed"]
    lf = client("lakeformation")
    lf.put_data_lake_settings(DataLakeSettings={"DataLakeAdmins": [], "CreateDatabaseDefaultPermissions": [],
                                                "CreateTableDefaultPermissions": []})
    (line,) = run_doctor()[1]["lake-formation"]
    assert line.startswith("FAIL Lake Formation mode: the statemachine and lambda role(s) have no grants on "
                           "ai_agent_kb_predict_age; after the first deploy (the roles must exist) run: "
                           "aws lakeformation grant-permissions --principal DataLakePrincipalIdentifier="
                           "arn:aws:iam::123456789012:role/ai-agent-predict-age-sfn --permissions CREATE_TABLE DESCRIBE")
    for role in ("sfn", "lambda"):
        lf.grant_permissions(Principal={"DataLakePrincipalIdentifier": f"arn:aws:iam::{ACCOUNT}:role/ai-agent-predict-age-{role}"},
                             Resource={"Database": {"Name": "ai_agent_kb_predict_age"}}, Permissions=["CREATE_TABLE"])
    assert run_doctor()[1]["lake-formation"] == ["ok Lake Formation mode: the roles have their grants"]


# --- the Fargate quota and the definition: moto lacks both APIs ---------------------------------

def test_on_moto_the_quota_and_the_validation_are_skipped(aws):
    found = run_doctor()[1]
    # moto's Service Quotas knows only VPC quotas: NoSuchResourceException for Fargate's.
    assert found["fargate-quota"] == ["skip Service Quotas has no value for L-3032A538 here; 400 vCPU run at once: "
                                      "check Service Quotas > AWS Fargate"]
    # moto has no ValidateStateMachineDefinition (a 500): said, and tried twice, not eight times.
    assert found["definition"][0].startswith("skip ValidateStateMachineDefinition did not answer (")


@pytest.mark.parametrize("quota, level", [(6.0, "FAIL"), (400.0, "ok"), (1000.0, "ok"), (None, "skip")])
def test_the_fargate_quota_decision(quota, level):
    """GetServiceQuota's Quota.Value (a float) against the 400 vCPU of 100 batches x 4 vCPU."""
    f = dr.fargate_quota(quota, 400)
    assert f.level == level
    if level == "FAIL":
        assert f.message.endswith("aws service-quotas request-service-quota-increase --service-code fargate "
                                  "--quota-code L-3032A538 --desired-value 400 (or lower batching.max_concurrency)")


VALIDATIONS = [
    ({"result": "OK", "diagnostics": [], "truncated": False}, "ok", "ValidateStateMachineDefinition: no problems"),
    ({"result": "FAIL", "truncated": False, "diagnostics": [
        {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
         "message": "The field 'EnableECSManagedTags' is not supported by Step Functions",
         "location": "/States/Training/Parameters"}]},
     "FAIL", "Step Functions refuses the definition: SCHEMA_VALIDATION_FAILED: The field 'EnableECSManagedTags' is not "
             "supported by Step Functions at /States/Training/Parameters (1 problem(s))"),
    ({"result": "OK", "truncated": False, "diagnostics": [
        {"severity": "WARNING", "code": "NO_DOLLAR", "message": "a field looks like a path without .$",
         "location": "/States/X/Parameters/a"}]},
     "warn", "1 warning(s) from Step Functions, first: NO_DOLLAR: a field looks like a path without .$ at "
             "/States/X/Parameters/a"),
]


@pytest.mark.parametrize("response, level, message", VALIDATIONS, ids=["ok", "error", "warning"])
def test_the_validation_decision(response, level, message):
    assert dr.validation(response) == dr.Finding("definition", level, message)


def test_the_vcpus_at_once(artifacts):
    d = dr.Doctor(artifacts, SimpleNamespace(), "s")
    assert (d.tasks_at_once(), d.needed_vcpus()) == (100, 400)  # the fan-out: 100 x 4 vCPU; training 16 alone


# --- deploy --dry-run runs every check ---------------------------------------------------------

def test_a_dry_run_prints_every_check(aws):
    from tests.aws.test_deploy import deploy

    code, out = deploy("--dry-run")
    assert code == 0
    checks = [line.split()[1].rstrip(":") for line in out.splitlines() if line.split()[:1] in (["ok"], ["FAIL"],
                                                                                            ["skip"], ["warn"])]
    assert checks[:3] == ["existing", "ecs-role", "source-table"] and "definition" in checks
    assert "dry run: nothing changed" in out


def test_a_lookup_the_caller_may_not_make_is_said_not_guessed(aws, monkeypatch):
    """A deployer allowed everything but logs:DescribeLogGroups: the log groups are 'could not check', the rest
    is checked, and the deploy goes on (moto enforcing IAM)."""
    from moto import settings

    iam = client("iam")
    iam.create_user(UserName="deployer")
    iam.put_user_policy(UserName="deployer", PolicyName="all-but-logs", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
                                               {"Effect": "Deny", "Action": "logs:DescribeLogGroups", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    _, found = run_doctor()
    assert {line.split()[0] for line in found["existing"]} == {"warn"}
    assert any("could not check whether AWS::Logs::LogGroup /stepkit/ai-agent-predict-age/training exists "
               "(DescribeLogGroups: access denied" in line for line in found["existing"])
