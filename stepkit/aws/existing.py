"""Resources that already exist under the names the stack would create.

CloudFormation fails a create whose explicit name is taken, half-way through the stack. The seed's
account has the Glue database, both ECR repositories, the Lambda and the state machine under these
names, and a delete-and-redeploy meets the log groups, repositories and database the old stack
retained. So before any change, deploy asks each named resource's service whether it is there.

What to do depends on what it holds. The retained kinds hold data (logs, images, table definitions):
they are imported into the stack with an IMPORT change set, which changes nothing in them; stepkit
writes the import template and the resources-to-import file and prints the two commands (moto has
no IMPORT change sets, so stepkit does not run them itself). The others hold nothing a redeploy does
not recreate: delete them, or give the pipeline another resource_prefix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stepkit.aws.session import Session

def _missing(e: Exception) -> bool:
    code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
    return code in {"NoSuchEntity", "ResourceNotFoundException", "StateMachineDoesNotExist", "EntityNotFoundException",
                    "RepositoryNotFoundException", "NotFoundException", "NotFound", "InvalidRequestException"}


def _call(fn: Callable[[], Any]) -> Any:
    from botocore.exceptions import ClientError

    try:
        return fn()
    except ClientError as e:
        if _missing(e):
            return None
        raise


@dataclass(frozen=True)
class Kind:
    name_of: Callable[[dict[str, Any]], str]  # the resource's name from its template properties
    exists: Callable[[Session, str, dict[str, str]], bool]
    identifier: Callable[[str, dict[str, str]], dict[str, str]] | None = None  # importable: its import identifier
    delete: str = ""  # the command that removes it ({name}, {arn} filled in)


def _log_group_exists(s: Session, name: str, env: dict[str, str]) -> bool:
    groups = s.client("logs").raw.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    return any(g["logGroupName"] == name for g in groups)


def _cluster_exists(s: Session, name: str, env: dict[str, str]) -> bool:
    found = s.client("ecs").raw.describe_clusters(clusters=[name]).get("clusters", [])
    return any(c.get("status") == "ACTIVE" for c in found)


KINDS: dict[str, Kind] = {
    "AWS::Logs::LogGroup": Kind(lambda p: p["LogGroupName"], _log_group_exists,
                                lambda n, env: {"LogGroupName": n}),
    "AWS::ECR::Repository": Kind(
        lambda p: p["RepositoryName"],
        lambda s, n, env: bool(_call(lambda: s.client("ecr").raw.describe_repositories(repositoryNames=[n]))),
        lambda n, env: {"RepositoryName": n}),
    "AWS::Glue::Database": Kind(
        lambda p: p["DatabaseInput"]["Name"],
        lambda s, n, env: bool(_call(lambda: s.client("glue").raw.get_database(Name=n))),
        lambda n, env: {"DatabaseName": n}),
    "AWS::IAM::Role": Kind(
        lambda p: p["RoleName"], lambda s, n, env: bool(_call(lambda: s.client("iam").raw.get_role(RoleName=n))),
        delete="aws iam delete-role --role-name {name}  (detach its policies first: aws iam list-attached-role-policies "
               "--role-name {name})"),
    "AWS::IAM::ManagedPolicy": Kind(
        lambda p: p["ManagedPolicyName"],
        lambda s, n, env: bool(_call(lambda: s.client("iam").raw.get_policy(
            PolicyArn=f"arn:aws:iam::{env['account']}:policy/{n}"))),
        delete="aws iam delete-policy --policy-arn arn:aws:iam::{account}:policy/{name}  (detach it from its roles "
               "first)"),
    "AWS::Lambda::Function": Kind(
        lambda p: p["FunctionName"],
        lambda s, n, env: bool(_call(lambda: s.client("lambda").raw.get_function(FunctionName=n))),
        delete="aws lambda delete-function --function-name {name}"),
    "AWS::StepFunctions::StateMachine": Kind(
        lambda p: p["StateMachineName"],
        lambda s, n, env: bool(_call(lambda: s.client("stepfunctions").raw.describe_state_machine(
            stateMachineArn=f"arn:aws:states:{env['region']}:{env['account']}:stateMachine:{n}"))),
        delete="aws stepfunctions delete-state-machine --state-machine-arn "
               "arn:aws:states:{region}:{account}:stateMachine:{name}  (its run history goes with it)"),
    "AWS::ECS::Cluster": Kind(lambda p: p["ClusterName"], _cluster_exists,
                              delete="aws ecs delete-cluster --cluster {name}"),
    "AWS::Events::Rule": Kind(
        lambda p: p["Name"],
        lambda s, n, env: bool(_call(lambda: s.client("events").raw.describe_rule(Name=n))),
        delete="aws events delete-rule --name {name} --force  (remove its targets first: aws events list-targets-by-rule "
               "--rule {name})"),
    "AWS::SNS::Topic": Kind(
        lambda p: p["TopicName"],
        lambda s, n, env: bool(_call(lambda: s.client("sns").raw.get_topic_attributes(
            TopicArn=f"arn:aws:sns:{env['region']}:{env['account']}:{n}"))),
        delete="aws sns delete-topic --topic-arn arn:aws:sns:{region}:{account}:{name}"),
    "AWS::Athena::WorkGroup": Kind(
        lambda p: p["Name"],
        # AWS answers InvalidRequestException for a missing workgroup; moto, an empty response.
        lambda s, n, env: bool((_call(lambda: s.client("athena").raw.get_work_group(WorkGroup=n)) or {}).get("WorkGroup")),
        delete="aws athena delete-work-group --work-group {name}"),
    "AWS::Budgets::Budget": Kind(
        lambda p: p["Budget"]["BudgetName"],
        lambda s, n, env: bool(_call(lambda: s.client("budgets").raw.describe_budget(
            AccountId=env["account"], BudgetName=n))),
        delete="aws budgets delete-budget --account-id {account} --budget-name {name}"),
}


@dataclass(frozen=True)
class Existing:
    logical_id: str
    type: str
    name: str

    @property
    def importable(self) -> bool:
        return KINDS[self.type].identifier is not None

    def line(self, env: dict[str, str]) -> str:
        what = "import it (below)" if self.importable else \
            "delete it: " + KINDS[self.type].delete.format(name=self.name, **env)
        return f"{self.type} {self.name} ({self.logical_id}) already exists: {what}"


def find(session: Session, template: dict[str, Any], owned: set[str], env: dict[str, str],
         unknown: list[str] | None = None) -> list[Existing]:
    """Named resources of the template the stack does not own yet and that exist in the account. One the
    caller may not look up (access denied...) is not guessed at: it goes to `unknown`, as a line."""
    from botocore.exceptions import BotoCoreError, ClientError

    from stepkit.aws.session import explain

    out = []
    for lid, res in sorted(template["Resources"].items()):
        kind = KINDS.get(res["Type"])
        if kind is None or lid in owned:
            continue
        name = kind.name_of(res["Properties"])
        try:
            if kind.exists(session, name, env):
                out.append(Existing(lid, res["Type"], name))
        except (ClientError, BotoCoreError) as e:
            if unknown is None:
                raise
            action = getattr(e, "operation_name", "") or "describe"
            unknown.append(f"could not check whether {res['Type']} {name} exists ({explain(e, action) or e})")
    return out


def import_template(template: dict[str, Any], found: list[Existing]) -> dict[str, Any]:
    """The stack's template cut to the resources to import (they must be all it holds on a first import)."""
    keep = {e.logical_id for e in found if e.importable}
    return {"AWSTemplateFormatVersion": template["AWSTemplateFormatVersion"],
            "Description": template["Description"],
            "Resources": {lid: r for lid, r in template["Resources"].items() if lid in keep}}


def resources_to_import(template: dict[str, Any], found: list[Existing], env: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": e.type, "LogicalResourceId": e.logical_id,
             "ResourceIdentifier": KINDS[e.type].identifier(e.name, env)}  # type: ignore[misc]
            for e in found if e.importable]


def guidance(stack: str, found: list[Existing], env: dict[str, str], template_url: str | None,
             import_file: Path | None, tags: dict[str, str]) -> list[str]:
    """The lines deploy stops with: each resource and what to do, then the import commands."""
    lines = [f"cannot create stack {stack}: {len(found)} resource(s) it would create already exist, and "
             "CloudFormation would fail half-way; nothing was changed:"]
    lines += ["  " + e.line(env) for e in found]
    if any(e.importable for e in found) and template_url and import_file:
        tag_args = " ".join(f"Key={k},Value={v}" for k, v in tags.items())
        lines += [
            "  import (adopts them as they are, contents kept), then deploy again:",
            f"    aws cloudformation create-change-set --stack-name {stack} --change-set-name stepkit-import "
            f"--change-set-type IMPORT --template-url {template_url} --resources-to-import file://{import_file} "
            f"--tags {tag_args}",
            f"    aws cloudformation execute-change-set --stack-name {stack} --change-set-name stepkit-import",
        ]
    if any(not e.importable for e in found):
        lines.append("  or give the pipeline another resource_prefix (and state_machine_name) to create new ones")
    return lines


def write_import_file(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return path
