"""`stepkit deploy`: upload the code and config, then create or update the stack through a change set.

The change set is printed as a diff before anything changes; `--dry-run` stops there. Stack
events stream while it executes; a failure names the resource and AWS's reason. The stack must
carry stepkit's tags for this pipeline, so a stack someone else made is never touched. Nothing
here deletes data: the bucket is only written to, data-holding resources are retained by the
template, and a change set is only ever executed, never a delete.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from stepkit.aws import doctor, existing, lifecycle, package, versions
from stepkit.compiler import template as tpl
from stepkit.ir.cfn import TAG_MANAGED, TAG_PIPELINE, MANAGED_BY, stack_tags
from stepkit.aws.session import Session, explain
from stepkit.errors import AwsError

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts

OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
STUCK = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED",
         "IMPORT_ROLLBACK_FAILED", "DELETE_COMPLETE"}
NO_CHANGES = ("didn't contain changes", "No updates are to be performed", "no changes")
RETAINED_TYPES = {"AWS::Glue::Database", "AWS::ECR::Repository", "AWS::Logs::LogGroup",
                  "AWS::StepFunctions::StateMachineVersion"}


@dataclass(frozen=True)
class Change:
    action: str  # Add | Modify | Remove | Import | Dynamic
    logical_id: str
    type: str
    replacement: str = ""  # True | False | Conditional (Modify only)
    details: tuple[str, ...] = ()

    @staticmethod
    def of(rc: dict[str, Any]) -> "Change":
        names = sorted({d.get("Target", {}).get("Name") or d.get("Target", {}).get("Attribute", "")
                        for d in rc.get("Details", [])} - {""})
        return Change(rc.get("Action", "?"), rc.get("LogicalResourceId", "?"), rc.get("ResourceType", "?"),
                      str(rc.get("Replacement", "")), tuple(names))

    def line(self) -> str:
        sign = {"Add": "+", "Remove": "-", "Modify": "~"}.get(self.action, "?")
        out = f"  {sign} {self.logical_id:<28} {self.type}"
        if self.action == "Modify" and self.replacement == "True":
            out += "  (replaced)"
        elif self.action == "Modify" and self.replacement == "Conditional":
            out += "  (may be replaced)"
        if self.details:
            out += f"  [{', '.join(self.details)}]"
        if self.type in RETAINED_TYPES and (self.action == "Remove" or self.replacement == "True"):
            out += "  (retained: the old one stays in the account)"
        return out


@dataclass
class Outcome:
    stack: str
    action: str  # create | update | none | dry-run
    changes: list[Change] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def default_stack_name(pipeline: Any) -> str:
    return pipeline.resource_prefix


# CloudFormation stack names: a letter, then letters, digits and hyphens; at most 128 characters.
_STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")


def check_stack_name(name: str, given: bool) -> None:
    if not _STACK_NAME.fullmatch(name):
        where = f"--stack-name {name!r}" if given else f"stack name {name!r} (the resource_prefix)"
        raise AwsError(f"{where}: a CloudFormation stack name is 1-128 letters, digits and '-', starting with a "
                       "letter")


class Deployer:
    def __init__(self, artifacts: "Artifacts", session: Session | None = None, stack_name: str | None = None,
                 echo: Callable[[str], None] = print, poll_seconds: float = 2.0, timeout_seconds: float = 3600):
        self.a = artifacts
        self.p = artifacts.context.p
        self.n = artifacts.context.names
        self.stack = stack_name or default_stack_name(self.p)
        check_stack_name(self.stack, given=stack_name is not None)  # before any AWS call
        self.session = session or Session(region=self.p.aws.region)
        self.echo = echo
        self.poll = poll_seconds
        self.timeout = timeout_seconds
        self.cfn = self.session.client("cloudformation")
        self.s3 = self.session.client("s3")

    # --- checks before anything is written
    def check_account(self) -> None:
        account = self.session.account()
        if account != self.p.aws.account_id:
            raise AwsError(f"{self.a.context.file}: aws.account_id is {self.p.aws.account_id} but the credentials are "
                           f"for account {account}: switch profile, or fix AWS_ACCOUNT_ID")
        if self.session.region != self.p.aws.region:
            raise AwsError(f"{self.a.context.file}: aws.region is {self.p.aws.region} but the session is in "
                           f"{self.session.region}")

    def check_bucket(self) -> None:
        from botocore.exceptions import ClientError

        bucket = self.p.aws.bucket
        try:
            self.s3.raw.head_bucket(Bucket=bucket)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise AwsError(f"s3://{bucket}: bucket does not exist (aws.bucket in {self.a.context.file}); "
                               "create it in " + self.p.aws.region) from None
            if code in ("403", "AccessDenied"):
                raise AwsError(f"s3:ListBucket: access denied on s3://{bucket}: the caller needs s3:ListBucket "
                               "on the pipeline's bucket") from None
            if code == "301" or code == "PermanentRedirect":
                region = e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region", "?")
                raise AwsError(self._wrong_region(bucket, region)) from None
            raise explain(e, "s3:ListBucket") or e from None
        location = self.s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        location = "eu-west-1" if location == "EU" else location
        if location != self.p.aws.region:
            raise AwsError(self._wrong_region(bucket, location))

    def check_workgroup(self) -> None:
        """The account's shared workgroup must leave client-side settings alone: in a workgroup that
        overrides them, Athena fails every CTAS that sets external_location, as each stage's does.
        (A workgroup of the pipeline's own is created by the stack without the override.)"""
        name = self.p.aws.workgroup
        if name != tpl.SHARED_WORKGROUP:
            return
        group = self.session.client("athena").get_work_group(WorkGroup=name)["WorkGroup"]
        if group.get("Configuration", {}).get("EnforceWorkGroupConfiguration"):
            raise AwsError(f"athena:GetWorkGroup: workgroup {name} overrides client-side settings, so Athena would "
                           "fail every CTAS stage (each sets its external_location): turn the override off, or "
                           f"name a workgroup of the pipeline's own in aws.workgroup ({self.a.context.file}), "
                           "which the stack creates")

    def _wrong_region(self, bucket: str, region: str) -> str:
        return (f"s3://{bucket} is in {region} but the pipeline deploys to {self.p.aws.region}: Lambda code must "
                "come from a bucket in the stack's region (fix aws.bucket or aws.region)")

    # --- uploads
    def upload(self, art: package.Artifact) -> bool:
        """Put `art` unless an identical object is there (content-hash keys); True when written."""
        from botocore.exceptions import ClientError

        bucket = self.p.aws.bucket
        try:
            head = self.s3.raw.head_object(Bucket=bucket, Key=art.key)
            if head.get("ETag", "").strip('"') == hashlib.md5(art.body).hexdigest():
                return False
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey", "NotFound"):
                raise explain(e, "s3:GetObject") or e from None
        self.s3.put_object(Bucket=bucket, Key=art.key, Body=art.body, ContentType=art.content_type)
        return True

    def config_artifact(self) -> package.Artifact:
        from stepkit.config import render, worker_config

        key = self.n.config_uri.removeprefix(f"s3://{self.p.aws.bucket}/")
        return package.Artifact(key, render(worker_config(self.p)).encode(), "application/json")

    def preflight(self, template: dict[str, Any], dry_run: bool) -> None:
        """What would make the stack fail half-way, checked before anything changes (aws/doctor.py). A dry run
        reports every check; a deploy stops on a resource that exists under a name the stack would create,
        or on a missing ECS service-linked role."""
        d = doctor.Doctor(self.a, self.session, self.stack)
        if dry_run:
            for f in d.run():
                self.echo(f.line())
            return
        blocking = d.run(["ecs-role"])
        unknown: list[str] = []
        found = existing.find(self.session, template, d.owned(), d.env, unknown)
        for line in unknown:
            self.echo(f"warning: {line}")
        if found:
            url = import_file = None
            if any(e.importable for e in found) and not d.owned():
                tmpl = package.template(self.p.aws.prefix, f"{self.stack}-import",
                                        tpl.render(existing.import_template(template, found)))
                self.upload(tmpl)
                url = package.template_url(self.p.aws.bucket, self.session.region, tmpl.key)
                import_file = existing.write_import_file(
                    Path("out") / self.stack / "import-resources.json",
                    existing.resources_to_import(template, found, d.env))
            raise AwsError("\n".join(existing.guidance(self.stack, found, d.env, url, import_file,
                                                       stack_tags(self.p.name))))
        failed = [f for f in blocking if f.level == doctor.FAIL]
        if failed:
            raise AwsError(f"{failed[0].check}: {failed[0].message}")

    def lifecycle(self, dry_run: bool) -> None:
        """Expire the scratch folders (aws/lifecycle.py): the bucket's other rules are kept as they are."""
        p = lifecycle.plan(self.s3, self.p)
        if p.changed and not dry_run:
            lifecycle.apply(self.s3, self.p, p)
        self.echo(("dry run: " if dry_run and p.changed else "") + p.summary(self.p))

    # --- the stack
    def describe(self) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            stacks = self.cfn.raw.describe_stacks(StackName=self.stack)["Stacks"]
        except ClientError as e:
            if "does not exist" in str(e.response.get("Error", {}).get("Message", "")):
                return None
            raise explain(e, "cloudformation:DescribeStacks") or e from None
        return stacks[0] if stacks else None

    def check_stack(self, stack: dict[str, Any]) -> None:
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        status = stack["StackStatus"]
        if tags.get(TAG_MANAGED) != MANAGED_BY or tags.get(TAG_PIPELINE) != self.p.name:
            raise AwsError(f"stack {self.stack} was not created by stepkit for pipeline {self.p.name!r} (tags "
                           f"{TAG_MANAGED}, {TAG_PIPELINE} missing or different): refusing to change it; "
                           "use --stack-name for a new stack")
        if status == "ROLLBACK_COMPLETE":
            raise AwsError(f"stack {self.stack} is ROLLBACK_COMPLETE (its first deploy failed) and cannot be updated: "
                           f"delete it (`aws cloudformation delete-stack --stack-name {self.stack}`; retained log "
                           "groups, repositories and the database stay, and the bucket is untouched), then deploy again")
        if status in STUCK:
            raise AwsError(f"stack {self.stack} is {status}: fix it in the CloudFormation console "
                           "(continue rollback or delete) before deploying")
        if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise AwsError(f"stack {self.stack} is busy ({status}): wait for it to finish, then deploy again")

    def check_prefix_free(self) -> None:
        """A new stack creates roles, functions and log groups with fixed names from resource_prefix: if
        one exists already (another stack of this pipeline, or one left behind), the create fails on it."""
        from botocore.exceptions import ClientError

        role = self.n.role("statemachine")
        try:
            self.session.client("iam").raw.get_role(RoleName=role)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) == "NoSuchEntity":
                return
            raise explain(e, "iam:GetRole") or e from None
        raise AwsError(f"stack {self.stack} does not exist but IAM role {role} does: resource_prefix "
                       f"{self.p.resource_prefix!r} is in use by another stack (or left by a deleted one), and a new "
                       "stack would fail on every resource it names. Deploy to the stack that has it (--stack-name), "
                       "or choose another resource_prefix")

    def remove_empty(self) -> str:
        """Delete the stack if it is the empty REVIEW_IN_PROGRESS stack a CREATE change set makes;
        what happened, to append to the error that ended the deploy (the error stays the news)."""
        try:
            stack = self.describe()
            if stack is None or stack["StackStatus"] != "REVIEW_IN_PROGRESS":
                return ""
            self.cfn.delete_stack(StackName=self.stack)
        except AwsError as e:
            return f"; the stack {self.stack} it made is left REVIEW_IN_PROGRESS, delete it by hand ({e})"
        return f"; the empty stack {self.stack} it made was deleted"

    def parameters(self, stack: dict[str, Any] | None, code_key: str | None, image_tag: str | None,
                   declared: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Values of the template's parameters (`declared`; CloudFormation refuses an undeclared one)."""
        current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters", [])}
        tag = image_tag or current.get(tpl.PARAM_IMAGE_TAG) or "latest"
        out = []
        if declared is None or tpl.PARAM_IMAGE_TAG in declared:  # no task definition: no image tag
            out.append({"ParameterKey": tpl.PARAM_IMAGE_TAG, "ParameterValue": tag})
        if code_key:
            out.append({"ParameterKey": tpl.PARAM_CODE_KEY, "ParameterValue": code_key})
        return out

    def change_set(self, kind: str, url: str, params: list[dict[str, str]]) -> tuple[str, list[Change]]:
        name = "stepkit-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        self.cfn.create_change_set(
            StackName=self.stack, ChangeSetName=name, ChangeSetType=kind, TemplateURL=url, Parameters=params,
            Capabilities=["CAPABILITY_NAMED_IAM"], Tags=[{"Key": k, "Value": v} for k, v in stack_tags(self.p.name).items()],
            Description=f"stepkit deploy of {self.p.name}")
        deadline = time.monotonic() + self.timeout
        while True:
            cs = self.cfn.describe_change_set(StackName=self.stack, ChangeSetName=name)
            status = cs.get("Status", "")
            if status in ("CREATE_COMPLETE", "FAILED"):
                break
            if time.monotonic() > deadline:
                raise AwsError(f"cloudformation:DescribeChangeSet: change set {name} not ready after {self.timeout:.0f} s")
            time.sleep(self.poll)
        reason = cs.get("StatusReason", "") or ""
        if status == "FAILED":
            if any(s in reason for s in NO_CHANGES):
                self.cfn.delete_change_set(StackName=self.stack, ChangeSetName=name)
                return name, []
            raise AwsError(f"cloudformation:CreateChangeSet: change set for {self.stack} failed: {reason}")
        changes = [Change.of(c["ResourceChange"]) for c in cs.get("Changes", []) if c.get("Type") == "Resource"]
        token = cs.get("NextToken")
        while token:
            cs = self.cfn.describe_change_set(StackName=self.stack, ChangeSetName=name, NextToken=token)
            changes += [Change.of(c["ResourceChange"]) for c in cs.get("Changes", []) if c.get("Type") == "Resource"]
            token = cs.get("NextToken")
        return name, changes

    def execute(self, name: str) -> str:
        """Execute the change set, print stack events as they come; returns the final stack status."""
        seen = {e["EventId"] for e in self._events()}
        try:
            self.cfn.execute_change_set(StackName=self.stack, ChangeSetName=name)
        except AwsError as e:
            # Some failures (and every failure in moto, which has no rollback) come back at once.
            raise AwsError(f"deploy of stack {self.stack} failed: {e}") from None
        deadline = time.monotonic() + self.timeout
        while True:
            for e in reversed([e for e in self._events() if e["EventId"] not in seen]):
                seen.add(e["EventId"])
                self.echo(_event_line(e))
            stack = self.describe() or {"StackStatus": "DELETE_COMPLETE"}
            status = stack["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                for e in reversed([e for e in self._events() if e["EventId"] not in seen]):
                    seen.add(e["EventId"])
                    self.echo(_event_line(e))
                return status
            if time.monotonic() > deadline:
                raise AwsError(f"stack {self.stack} still {status} after {self.timeout:.0f} s: watch it in the console")
            time.sleep(self.poll)

    def _events(self) -> list[dict[str, Any]]:
        from botocore.exceptions import ClientError

        try:
            return self.cfn.raw.describe_stack_events(StackName=self.stack).get("StackEvents", [])
        except ClientError as e:
            if "does not exist" in str(e.response.get("Error", {}).get("Message", "")):
                return []
            raise explain(e, "cloudformation:DescribeStackEvents") or e from None

    def failure(self, status: str, since: datetime) -> AwsError:
        failed = [e for e in self._events() if e.get("ResourceStatus", "").endswith("_FAILED")
                  and e.get("LogicalResourceId") != self.stack and _at(e) >= since
                  and "cancelled" not in (e.get("ResourceStatusReason") or "")]
        first = min(failed, key=_at) if failed else None
        why = (f"{first['LogicalResourceId']} ({first.get('ResourceType', '?')}): "
               f"{first.get('ResourceStatusReason') or 'no reason given'}") if first else "no failed resource reported"
        msg = f"deploy of stack {self.stack} failed and rolled back ({status}): {why}"
        if status == "ROLLBACK_COMPLETE":
            msg += (f"; the stack cannot be updated now: delete it (`aws cloudformation delete-stack --stack-name "
                    f"{self.stack}`), fix the cause, deploy again")
        return AwsError(msg)

    def outputs(self) -> dict[str, str]:
        stack = self.describe() or {}
        return {o["OutputKey"]: o.get("OutputValue", "") for o in sorted(stack.get("Outputs", []),
                                                                          key=lambda o: o["OutputKey"])}

    def run(self, dry_run: bool = False, image_tag: str | None = None) -> Outcome:
        self.check_account()
        self.check_bucket()
        self.check_workgroup()
        stack = self.describe()
        if stack:
            self.check_stack(stack)
        creating = stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS"
        if creating:
            self.check_prefix_free()
        template = tpl.build(self.a)
        self.preflight(template, dry_run)
        code_key = None
        if tpl.PARAM_CODE_KEY in template["Parameters"]:
            code = package.function_code(self.p.aws.prefix)
            if not dry_run and self.upload(code):
                self.echo(f"uploaded s3://{self.p.aws.bucket}/{code.key}")
            code_key = code.key
        if not dry_run and self.upload(self.config_artifact()):
            self.echo(f"uploaded {self.n.config_uri}")
        self.lifecycle(dry_run)
        # The template goes up even on a dry run: a change set reads it from S3.
        tmpl = package.template(self.p.aws.prefix, self.stack, tpl.render(template))
        self.upload(tmpl)
        url = package.template_url(self.p.aws.bucket, self.session.region, tmpl.key)
        kind = "CREATE" if creating else "UPDATE"
        try:
            name, changes = self.change_set(kind, url, self.parameters(stack, code_key, image_tag, template["Parameters"]))
        except AwsError as e:
            # A CREATE change set makes an empty stack (REVIEW_IN_PROGRESS) first: leave none behind.
            raise AwsError(f"{e}{self.remove_empty() if creating else ''}") from None
        if not changes:
            self.echo(f"stack {self.stack}: no changes")
            self.echo(versions.describe_live(self.session.client("stepfunctions"), self.n.state_machine_arn))
            return Outcome(self.stack, "none", [], self.outputs())
        self.echo(f"change set {name} ({kind.lower()} stack {self.stack}): {len(changes)} resource change(s)")
        for c in changes:
            self.echo(c.line())
        if dry_run:
            self.cfn.delete_change_set(StackName=self.stack, ChangeSetName=name)
            if stack is None:
                # The change set made an empty REVIEW_IN_PROGRESS stack; leave nothing behind.
                self.cfn.delete_stack(StackName=self.stack)
            self.echo("dry run: nothing changed")
            return Outcome(self.stack, "dry-run", changes)
        since = datetime.now(timezone.utc).replace(microsecond=0)
        try:
            status = self.execute(name)
        except AwsError as e:
            raise AwsError(f"{e}{self.remove_empty() if creating else ''}") from None
        if status not in OK:
            raise self.failure(status, since)
        outputs = self.outputs()
        self.echo(f"stack {self.stack}: {status}")
        for k, v in outputs.items():
            self.echo(f"  {k:<34} {v}")
        self.echo(versions.describe_live(self.session.client("stepfunctions"), self.n.state_machine_arn))
        return Outcome(self.stack, kind.lower(), changes, outputs)


def _at(event: dict[str, Any]) -> datetime:
    ts = event.get("Timestamp")
    if isinstance(ts, datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    return datetime.min.replace(tzinfo=timezone.utc)


def _event_line(e: dict[str, Any]) -> str:
    when = _at(e).strftime("%H:%M:%S")
    reason = e.get("ResourceStatusReason") or ""
    line = f"{when}  {e.get('ResourceStatus', ''):<22} {e.get('LogicalResourceId', ''):<28} {e.get('ResourceType', '')}"
    return f"{line}  {reason}" if reason else line
