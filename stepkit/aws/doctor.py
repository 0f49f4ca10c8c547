"""`stepkit doctor PIPELINE` (and `stepkit deploy --dry-run`): what the account needs before a first deploy and
a first run, each as one line saying what to do.

Every check reads the account through its API and decides in a plain function of the response, so the
decision is tested on the documented response shape where moto lacks the API (Service Quotas for
Fargate, ValidateStateMachineDefinition). A check that cannot ask (access denied, an API the endpoint
lacks) says so and is skipped, never guessed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from stepkit.aws import existing
from stepkit.aws.session import Session, explain
from stepkit.errors import AwsError
from stepkit.ir import asl
from stepkit.steps.fan_out import FanOut
from stepkit.steps.fargate_task import FargateTask

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
ECS_ROLE = "AWSServiceRoleForECS"
ECS_ROLE_PATH = "/aws-service-role/ecs.amazonaws.com/"
CREATE_ECS_ROLE = "aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com"
FARGATE_QUOTA = "L-3032A538"
STRINGS = ("string", "varchar", "char")
INTEGERS = ("bigint", "int", "integer", "smallint", "tinyint")
ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "s3")


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok | warn | FAIL | skip
    message: str

    def line(self) -> str:
        return f"{self.level:<5} {self.check}: {self.message}"


# --- decisions on response shapes ------------------------------------------------------------

def source_columns(table: dict[str, Any] | None, source: Any, where: str) -> Finding:
    """GetTable's Table against the spec's source (id and document columns, their types, the location)."""
    if table is None:
        return Finding("source-table", FAIL, f"{where} does not exist: create it (an external table over "
                       f"{source.location}) or fix source.table / source.database")
    sd = table.get("StorageDescriptor", {})
    cols = {c["Name"].lower(): c.get("Type", "").lower() for c in [*sd.get("Columns", []), *table.get("PartitionKeys", [])]}
    wanted = (STRINGS if source.id_type == "string" else INTEGERS)
    problems = []
    for col, kinds, what in ((source.id_column, wanted, source.id_type), (source.document_column, STRINGS, "string")):
        got = cols.get(col.lower())
        if got is None:
            problems.append(f"no column {col} (it has {', '.join(sorted(cols)) or 'none'})")
        elif not got.startswith(kinds):
            problems.append(f"{col} is {got}, the spec says {what}")
    if problems:
        return Finding("source-table", FAIL, f"{where}: " + "; ".join(problems) + ": fix source.id_column / "
                       "id_type / document_column, or the table")
    location = sd.get("Location", "")
    if location and location.rstrip("/") + "/" != source.location:
        return Finding("source-table", WARN, f"{where} reads {location} but source.location is {source.location}: "
                       "the roles may read only source.location; make them the same")
    return Finding("source-table", OK, f"{where}: {source.id_column} ({cols[source.id_column.lower()]}) and "
                   f"{source.document_column} ({cols[source.document_column.lower()]})")


def subnets(found: list[dict[str, Any]], wanted: list[str], tasks: int) -> list[Finding]:
    """DescribeSubnets' Subnets: all there, room for `tasks` ENIs, two Availability Zones."""
    have = {s["SubnetId"]: s for s in found}
    missing = [s for s in wanted if s not in have]
    if missing:
        return [Finding("subnets", FAIL, f"{', '.join(missing)} not found in this region: fix aws.network.subnets")]
    free = sum(int(s.get("AvailableIpAddressCount", 0)) for s in found)
    zones = sorted({s.get("AvailabilityZone", "?") for s in found})
    out = [Finding("subnets", OK if free >= tasks else FAIL,
                   f"{free} free addresses for {tasks} tasks at once (max_concurrency + 1, one ENI each)" +
                   ("" if free >= tasks else ": add subnets to aws.network.subnets or lower batching.max_concurrency"))]
    if len(zones) < 2:
        out.append(Finding("subnets", WARN, f"all in {zones[0]}: a capacity shortage there stops every task; "
                           "add a subnet in a second Availability Zone"))
    return out


def routes(subnet: str, table: dict[str, Any] | None, public_ip: bool, endpoints: set[str]) -> Finding:
    """How a subnet's tasks reach ECR, S3 and CloudWatch Logs: a NAT gateway, an internet gateway with a
    public IP, or VPC endpoints (ecr.api, ecr.dkr, logs, and s3)."""
    default = [r for r in (table or {}).get("Routes", []) if r.get("DestinationCidrBlock") == "0.0.0.0/0"
               and r.get("State", "active") == "active"]
    if any(r.get("NatGatewayId") or r.get("TransitGatewayId") or r.get("NetworkInterfaceId") for r in default):
        return Finding("network", OK, f"{subnet}: a default route through a NAT gateway")
    if any(str(r.get("GatewayId", "")).startswith("igw-") for r in default):
        if public_ip:
            return Finding("network", OK, f"{subnet}: an internet gateway, and tasks get a public IP")
        return Finding("network", FAIL, f"{subnet} routes to an internet gateway but tasks get no public IP, so they "
                       "cannot pull images: set aws.network.assign_public_ip: true, or use a subnet behind a NAT gateway")
    lacking = [e for e in ENDPOINTS if e not in endpoints]
    if not lacking:
        return Finding("network", OK, f"{subnet}: no internet route; VPC endpoints for {', '.join(ENDPOINTS)}")
    return Finding("network", FAIL, f"{subnet} has no route to the internet and no VPC endpoint for "
                   f"{', '.join(lacking)}: tasks cannot pull images or write logs; add a NAT gateway, or those "
                   "endpoints (s3 as a gateway endpoint on this subnet's route table)")


def encryption(bucket: str, rules: list[dict[str, Any]], key: dict[str, Any] | None, spec_key: str | None) -> Finding:
    """GetBucketEncryption's rules and DescribeKey's KeyMetadata (None when there is no KMS key or it
    cannot be read) against aws.kms_key_arn."""
    default = (rules or [{}])[0].get("ApplyServerSideEncryptionByDefault", {})
    algorithm = default.get("SSEAlgorithm", "AES256")
    if not algorithm.startswith("aws:kms"):
        return Finding("encryption", OK, f"s3://{bucket}: SSE-S3 (no key permissions needed)")
    if not default.get("KMSMasterKeyID") or (key or {}).get("KeyManager") == "AWS":
        return Finding("encryption", OK, f"s3://{bucket}: SSE-KMS with the AWS-managed aws/s3 key")
    if key is None:
        return Finding("encryption", WARN, f"s3://{bucket}: SSE-KMS with key {default['KMSMasterKeyID']}, which "
                       "this caller cannot describe: if it is a customer key, set aws.kms_key_arn to its ARN")
    if spec_key == key.get("Arn"):
        return Finding("encryption", OK, f"s3://{bucket}: SSE-KMS with {key['Arn']}; the roles may use it "
                       "(aws.kms_key_arn)")
    return Finding("encryption", FAIL, f"s3://{bucket} is encrypted with the customer key {key['Arn']}: set "
                   f"aws.kms_key_arn: {key['Arn']} so the state machine and task roles may use it (kms:Decrypt, "
                   "kms:GenerateDataKey), else every read and write fails with AccessDenied")


def lake_formation(settings: dict[str, Any], grants: dict[str, bool], database: str, source: str,
                   roles: dict[str, str]) -> Finding:
    """GetDataLakeSettings: IAM access control (new databases and tables give IAM_ALLOWED_PRINCIPALS ALL)
    needs no grants; Lake Formation mode needs them for the state machine and cleanup roles."""
    def iam_mode(key: str) -> bool:
        return any(p.get("Principal", {}).get("DataLakePrincipalIdentifier") == "IAM_ALLOWED_PRINCIPALS"
                   for p in settings.get(key, []))

    if iam_mode("CreateDatabaseDefaultPermissions") and iam_mode("CreateTableDefaultPermissions"):
        return Finding("lake-formation", OK, "IAM access control: no Lake Formation grants needed")
    missing = [r for r, ok in grants.items() if not ok]
    if not missing:
        return Finding("lake-formation", OK, "Lake Formation mode: the roles have their grants")
    db, tables = f'{{"Database":{{"Name":"{database}"}}}}', f'{{"Table":{{"DatabaseName":"{database}","TableWildcard":{{}}}}}}'
    src_db, _, src_table = source.partition(".")
    cmds = {
        "statemachine": [f"aws lakeformation grant-permissions --principal DataLakePrincipalIdentifier={roles['statemachine']} "
                         f"--permissions CREATE_TABLE DESCRIBE --resource '{db}'",
                         f"aws lakeformation grant-permissions --principal DataLakePrincipalIdentifier={roles['statemachine']} "
                         f"--permissions SELECT DESCRIBE ALTER DROP INSERT --resource '{tables}'",
                         f"aws lakeformation grant-permissions --principal DataLakePrincipalIdentifier={roles['statemachine']} "
                         f"--permissions SELECT DESCRIBE --resource "
                         f"'{{\"Table\":{{\"DatabaseName\":\"{src_db}\",\"Name\":\"{src_table}\"}}}}'"],
        "lambda": [f"aws lakeformation grant-permissions --principal DataLakePrincipalIdentifier={roles['lambda']} "
                   f"--permissions DROP DESCRIBE --resource '{tables}'"],
    }
    return Finding("lake-formation", FAIL, "Lake Formation mode: the " + " and ".join(missing) + " role(s) have no "
                   "grants on " + database + "; after the first deploy (the roles must exist) run: "
                   + " ; ".join(c for r in missing for c in cmds[r]))


def fargate_quota(value: float | None, needed: float) -> Finding:
    """GetServiceQuota's Quota.Value for L-3032A538 (Fargate On-Demand vCPU) against the vCPUs running at once."""
    if value is None:
        return Finding("fargate-quota", SKIP, f"Service Quotas has no value for {FARGATE_QUOTA} here; {needed:g} "
                       "vCPU run at once: check Service Quotas > AWS Fargate")
    if value >= needed:
        return Finding("fargate-quota", OK, f"{value:g} vCPU allowed, {needed:g} run at once")
    return Finding("fargate-quota", FAIL, f"{value:g} vCPU allowed but {needed:g} run at once: tasks past the quota "
                   f"fail to launch; aws service-quotas request-service-quota-increase --service-code fargate "
                   f"--quota-code {FARGATE_QUOTA} --desired-value {needed:g} (or lower batching.max_concurrency)")


def validation(response: dict[str, Any]) -> Finding:
    """ValidateStateMachineDefinition's result and diagnostics."""
    diags = response.get("diagnostics", [])
    errors = [d for d in diags if d.get("severity") == "ERROR"]
    if response.get("result") == "FAIL" or errors:
        d = (errors or diags or [{}])[0]
        return Finding("definition", FAIL, f"Step Functions refuses the definition: {d.get('code', '?')}: "
                       f"{d.get('message', '')} at {d.get('location', '?')} ({len(errors) or len(diags)} problem(s))")
    if diags:
        d = diags[0]
        return Finding("definition", WARN, f"{len(diags)} warning(s) from Step Functions, first: {d.get('code')}: "
                       f"{d.get('message')} at {d.get('location')}")
    return Finding("definition", OK, "ValidateStateMachineDefinition: no problems")


# --- the checks ------------------------------------------------------------------------------

def _skip(check: str, e: Exception, action: str) -> Finding:
    mapped = explain(e, action) if isinstance(e, (ClientError, BotoCoreError)) else None
    return Finding(check, SKIP, f"could not ask ({mapped or e})")


class Doctor:
    def __init__(self, artifacts: "Artifacts", session: Session, stack: str):
        self.a, self.session, self.stack = artifacts, session, stack
        self.p, self.n = artifacts.context.p, artifacts.context.names
        self.env = {"account": self.p.aws.account_id, "region": self.p.aws.region}

    def run(self, checks: list[str] | None = None) -> list[Finding]:
        out: list[Finding] = []
        for name, check in self.checks().items():
            if checks is not None and name not in checks:
                continue
            try:
                out += check()
            except AwsError as e:
                out.append(Finding(name, FAIL, str(e)))
        return out

    def checks(self) -> dict[str, Callable[[], list[Finding]]]:
        return {"existing": self.existing, "ecs-role": self.ecs_role, "source-table": self.source_table,
                "subnets": self.subnets, "encryption": self.encryption, "lake-formation": self.lake_formation,
                "fargate-quota": self.fargate_quota, "definition": self.definition}

    def template(self) -> dict[str, Any]:
        from stepkit.compiler import template as tpl

        return tpl.build(self.a)

    def owned(self) -> set[str]:
        """Logical ids the stack already has (none when there is no stack)."""
        try:
            pages = self.session.client("cloudformation").raw.get_paginator("list_stack_resources").paginate(
                StackName=self.stack)
            return {r.get("LogicalResourceId") for page in pages for r in page.get("StackResourceSummaries", [])} - {None}
        except ClientError as e:
            if "does not exist" in str(e.response.get("Error", {}).get("Message", "")):
                return set()
            raise explain(e, "cloudformation:ListStackResources") or e from None

    def existing(self) -> list[Finding]:
        unknown: list[str] = []
        found = existing.find(self.session, self.template(), self.owned(), self.env, unknown)
        out = [Finding("existing", FAIL, e.line(self.env)) for e in found]
        out += [Finding("existing", WARN, line) for line in unknown]
        return out or [Finding("existing", OK, "no resource the stack creates exists yet under its name")]

    def ecs_role(self) -> list[Finding]:
        # Found by its path, which AWS fixes for the role it creates for ECS (its name is AWSServiceRoleForECS).
        try:
            roles = self.session.client("iam").raw.list_roles(PathPrefix=ECS_ROLE_PATH).get("Roles", [])
        except ClientError as e:
            return [_skip("ecs-role", e, "iam:ListRoles")]
        if not roles:
            return [Finding("ecs-role", FAIL, f"{ECS_ROLE} is missing (a new account has none) and creating the ECS "
                            f"cluster fails without it: run `{CREATE_ECS_ROLE}`, or `stepkit doctor PIPELINE "
                            "--create-ecs-role`")]
        return [Finding("ecs-role", OK, f"{ECS_ROLE} exists")]

    def source_table(self) -> list[Finding]:
        s = self.p.source
        db = s.database or self.p.aws.database
        try:
            table = self.session.client("glue").raw.get_table(DatabaseName=db, Name=s.table)["Table"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "EntityNotFoundException":
                return [_skip("source-table", e, "glue:GetTable")]
            table = None
        return [source_columns(table, s, f"{db}.{s.table}")]

    def subnets(self) -> list[Finding]:
        net = self.p.aws.network
        ec2 = self.session.client("ec2")
        try:
            found = ec2.raw.describe_subnets(Filters=[{"Name": "subnet-id", "Values": list(net.subnets)}])["Subnets"]
        except ClientError as e:
            return [_skip("subnets", e, "ec2:DescribeSubnets")]
        tasks = self.tasks_at_once() + 1
        out = subnets(found, list(net.subnets), tasks)
        if any(f.level == FAIL for f in out):
            return out
        groups = ec2.raw.describe_security_groups(
            Filters=[{"Name": "group-id", "Values": list(net.security_groups)}])["SecurityGroups"]
        lost = sorted(set(net.security_groups) - {g["GroupId"] for g in groups})
        if lost:
            out.append(Finding("subnets", FAIL, f"security group(s) {', '.join(lost)} not found: fix "
                               "aws.network.security_groups"))
        for s in found:
            out.append(routes(s["SubnetId"], self._route_table(ec2, s), net.assign_public_ip,
                              self._endpoints(ec2, s["VpcId"])))
        return out

    @staticmethod
    def _route_table(ec2: Any, subnet: dict[str, Any]) -> dict[str, Any] | None:
        tables = ec2.raw.describe_route_tables(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}])["RouteTables"]
        if not tables:  # no table of its own: the VPC's main one
            tables = ec2.raw.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]},
                                                            {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
        return tables[0] if tables else None

    def _endpoints(self, ec2: Any, vpc: str) -> set[str]:
        found = ec2.raw.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}]).get("VpcEndpoints", [])
        prefix = f"com.amazonaws.{self.p.aws.region}."
        return {e["ServiceName"].removeprefix(prefix) for e in found if e.get("State", "available") == "available"}

    def encryption(self) -> list[Finding]:
        source_bucket = self.p.source.location.removeprefix("s3://").partition("/")[0]
        buckets = sorted({self.p.aws.bucket, source_bucket})
        out = []
        for bucket in buckets:
            try:
                rules = self.session.client("s3").raw.get_bucket_encryption(
                    Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") != "ServerSideEncryptionConfigurationNotFoundError":
                    out.append(_skip("encryption", e, "s3:GetEncryptionConfiguration"))
                    continue
                rules = []
            key_id = ((rules or [{}])[0].get("ApplyServerSideEncryptionByDefault") or {}).get("KMSMasterKeyID")
            key = None
            if key_id:
                try:
                    key = self.session.client("kms").raw.describe_key(KeyId=key_id)["KeyMetadata"]
                except ClientError:
                    key = None
            out.append(encryption(bucket, rules, key, self.p.aws.kms_key_arn))
        return out

    def lake_formation(self) -> list[Finding]:
        lf = self.session.client("lakeformation")
        try:
            settings = lf.raw.get_data_lake_settings()["DataLakeSettings"]
        except ClientError as e:
            return [_skip("lake-formation", e, "lakeformation:GetDataLakeSettings")]
        roles = {r: self.n.role_arn(r) for r in ("statemachine", "lambda")}
        grants = {}
        for role, arn in roles.items():
            try:
                # AWS wants a Resource with a Principal: the pipeline's database, where both roles need grants.
                perms = lf.raw.list_permissions(Principal={"DataLakePrincipalIdentifier": arn},
                                                Resource={"Database": {"Name": self.p.aws.database}}).get(
                    "PrincipalResourcePermissions", [])
            except ClientError:
                perms = []
            grants[role] = bool(perms)
        src = f"{self.p.source.database or self.p.aws.database}.{self.p.source.table}"
        return [lake_formation(settings, grants, self.p.aws.database, src, roles)]

    def _at_once(self, stage: Any) -> int:
        b = self.p.batching
        return min(b.max_concurrency, b.batches) if isinstance(stage, FanOut) else 1

    def tasks_at_once(self) -> int:
        """The most Fargate tasks one stage runs at the same time (a fan-out: its concurrency)."""
        return max((self._at_once(s) for s in self.p.stages if isinstance(s, (FanOut, FargateTask))), default=1)

    def needed_vcpus(self) -> float:
        tasks = self.p.compute.tasks
        return max((tasks[s.task].cpu * self._at_once(s) for s in self.p.stages
                    if isinstance(s, (FanOut, FargateTask))), default=0)

    def fargate_quota(self) -> list[Finding]:
        try:
            value = self.session.client("service-quotas", attempts=2).raw.get_service_quota(
                ServiceCode="fargate", QuotaCode=FARGATE_QUOTA)["Quota"]["Value"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "NoSuchResourceException":
                return [_skip("fargate-quota", e, "servicequotas:GetServiceQuota")]
            value = None
        return [fargate_quota(value, self.needed_vcpus())]

    def definition(self) -> list[Finding]:
        # An endpoint without this API (moto) answers 500 every time: two tries, not eight.
        sfn = self.session.client("stepfunctions", attempts=2)
        try:
            response = sfn.raw.validate_state_machine_definition(definition=asl.render(self.a.definition),
                                                                 type="STANDARD")
        except (ClientError, BotoCoreError) as e:
            why = explain(e, "states:ValidateStateMachineDefinition") or e
            return [Finding("definition", SKIP, f"ValidateStateMachineDefinition did not answer ({why}); Step Functions "
                            "checks the definition when the stack creates the state machine")]
        return [validation(response)]


def basics(deployer: Any) -> list[Finding]:
    """Deploy's own first checks (aws/deploy.py), as doctor lines: the account and region, the bucket, the
    workgroup."""
    p = deployer.p
    out = []
    for name, check, good in (
            ("account", deployer.check_account, f"credentials for {p.aws.account_id}, region {p.aws.region}"),
            ("bucket", deployer.check_bucket, f"s3://{p.aws.bucket} in {p.aws.region}"),
            ("workgroup", deployer.check_workgroup, f"{p.aws.workgroup}" + (
                " (the stack creates it)" if p.aws.workgroup != "primary" else " leaves client-side settings alone"))):
        try:
            check()
            out.append(Finding(name, OK, good))
        except AwsError as e:
            out.append(Finding(name, FAIL, str(e)))
    return out


def create_ecs_role(session: Session) -> str:
    session.client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    return f"created {ECS_ROLE}"
