"""The CloudFormation template of a compiled pipeline: every resource the seed ran on, in one stack.

Built as plain dicts from the compiler's `Artifacts` (definition, one policy per role) and the
spec's names (`compiler.names.Names`), rendered once with sorted keys so it diffs in review.
No boto3 here: `stepkit compile` writes `template.json` and must stay fast.

Choices worth knowing (also in the template's Metadata, where reviewers see them):
- Cost guard: an `AWS::Budgets::Budget`, not a CloudWatch billing alarm. `AWS/Billing
  EstimatedCharges` exists only in us-east-1 and only once billing alerts are enabled; a
  budget works from any region's stack and needs no account switch (aws-facts.md).
- Data-holding resources (Glue database, ECR repositories, log groups) are retained when the
  stack is deleted or a change would replace them. The S3 bucket is the user's, never the stack's.
- Athena workgroup `primary` exists in every account and cannot be created by a stack: the
  template then has no workgroup (and so no bytes-scanned cutoff); name one in `aws.workgroup`.
"""
from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from stepkit.compiler import alerts as run_alerts
from stepkit.compiler.build import CLEANUP_ON_FAILURE, FAILED
from stepkit.ir import asl
from stepkit.ir.cfn import PARAM_CODE_KEY, PARAM_IMAGE_TAG, RETAIN, Portable, Resource, get_att, log_group
from stepkit.ir.cfn import policy_id, ref, role_id, sub, tags
from stepkit.ir.names import ROLES
from stepkit.spec.models import CostAlarm

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts

__all__ = ["ALIAS", "PARAM_CODE_KEY", "PARAM_IMAGE_TAG", "SHARED_WORKGROUP", "build", "render"]
# Every account has this Athena workgroup: the stack uses it as it is and creates no other.
SHARED_WORKGROUP = "primary"
TRUST = {
    "statemachine": "states.amazonaws.com",
    "lambda": "lambda.amazonaws.com",
    "task": "ecs-tasks.amazonaws.com",
    "task_execution": "ecs-tasks.amazonaws.com",
}
ROLE_IDS = {r: role_id(r) for r in ROLES}
POLICY_IDS = {r: policy_id(r) for r in ROLES}
MANAGED_POLICY_MAX = 6144  # IAM quota: characters of a managed policy, whitespace excluded
STATE_MACHINE = "StateMachine"
STATE_MACHINE_ALIAS = "StateMachineAlias"
VERSION_PREFIX = "StateMachineVersion"
# The alias every run starts (the schedule and `stepkit run`); `stepkit rollback` moves it.
ALIAS = "live"
SCHEDULE = "Schedule"


def revision_digest(state_machine: dict[str, Any]) -> str:
    """What makes a state machine revision (definition, role, logging, tracing; not its tags, which
    apply to every version), hashed: a new digest is a new version."""
    props = {k: v for k, v in state_machine["Properties"].items() if k != "Tags"}
    return hashlib.sha256(json.dumps(props, sort_keys=True).encode()).hexdigest()[:12]


def _trust(service: str) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if service == "states.amazonaws.com":
        # Confused-deputy guard: only this account's state machines may assume the role.
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}
    return {"Version": "2012-10-17", "Statement": [statement]}


class _Builder:
    def __init__(self, artifacts: "Artifacts"):
        self.a = artifacts
        self.p = artifacts.context.p
        self.n = artifacts.context.names
        self.portable = Portable(self.p.aws.account_id, self.p.aws.region)
        self.tags = tags(self.p.name)
        self.resources: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.parameters: dict[str, dict[str, Any]] = {}

    def add(self, lid: str, type_: str, props: dict[str, Any], *, taggable: bool = True,
            retain: bool = False, depends_on: list[str] | None = None) -> str:
        res: dict[str, Any] = {"Type": type_, "Properties": props}
        if taggable:
            props["Tags"] = list(self.tags)
        if retain:
            res.update(RETAIN)
        if depends_on:
            res["DependsOn"] = sorted(depends_on)
        self.resources[lid] = res
        return lid

    def output(self, lid: str, value: Any, description: str) -> None:
        self.outputs[lid] = {"Description": description, "Value": value}

    def log_group(self, lid: str, name: str, what: str) -> str:
        r = log_group(lid, name, what)
        self.add(lid, r.type, dict(r.properties), retain=r.retain)
        for o in r.outputs:
            self.output(o.logical_id, o.value, o.description)
        return lid

    def _policy_of(self, role: str) -> list[str]:
        """The role's managed policy: AWS checks a state machine's log delivery rights at creation."""
        return [POLICY_IDS[role]] if POLICY_IDS[role] in self.resources else []

    # --- resources
    def roles(self) -> None:
        for role in ROLES:
            lid = ROLE_IDS[role]
            doc = self.a.policies[role].document()
            props: dict[str, Any] = {"RoleName": self.n.role(role), "AssumeRolePolicyDocument": _trust(TRUST[role])}
            if len(json.dumps(doc, separators=(",", ":"))) <= MANAGED_POLICY_MAX:
                # A managed policy is its own versioned resource, readable in the console, and IAM
                # validates it on its own; the role gets it attached.
                self.add(POLICY_IDS[role], "AWS::IAM::ManagedPolicy", {
                    "ManagedPolicyName": f"{self.n.role(role)}-policy",
                    "Description": f"stepkit: what the {role} role of {self.p.name} needs (compiled)",
                    "PolicyDocument": self.portable.walk(doc),
                    "Roles": [ref(lid)],
                }, taggable=False)
            else:
                # Too big for a managed policy: inline policies may total 10,240 characters per role.
                props["Policies"] = [{"PolicyName": "stepkit-compiled", "PolicyDocument": self.portable.walk(doc)}]
            self.add(lid, "AWS::IAM::Role", props)
            self.output(lid + "Arn", get_att(lid, "Arn"), f"IAM role {role}")

    def declared(self) -> None:
        """What the blocks declared (task definitions, repositories, the cleanup function...)."""
        seen: dict[str, Resource] = {}
        for r in self.a.resources:
            if r.logical_id in seen:
                if seen[r.logical_id].key() != r.key():
                    raise ValueError(f"two blocks declare different resources named {r.logical_id}")
                continue
            seen[r.logical_id] = r
            self.declare(r)

    def declare(self, r: Resource) -> None:
        depends = sorted({*r.depends_on, *(d for role in r.after_policy_of for d in self._policy_of(role))})
        self.add(r.logical_id, r.type, dict(r.properties), taggable=r.taggable, retain=r.retain,
                 depends_on=depends or None)
        for o in r.outputs:
            self.output(o.logical_id, o.value, o.description)
        for name, declaration in r.parameters:
            self.parameters[name] = dict(declaration)

    def alerts(self) -> None:
        """The run alerts (compiler/alerts.py): the stage a run failed at, on an SNS topic."""
        failure_path = [s for s in (CLEANUP_ON_FAILURE, FAILED) if s in self.a.definition.get("States", {})]
        for r in run_alerts.resources(self.a, failure_path):
            self.declare(r)

    def state_machine(self) -> None:
        logs = self.log_group("StateMachineLogGroup", self.n.log_group("statemachine"), "the state machine")
        self.add(STATE_MACHINE, "AWS::StepFunctions::StateMachine", {
            "StateMachineName": self.n.state_machine,
            # `.sync` integrations (ECS, Athena) run only in STANDARD workflows.
            "StateMachineType": "STANDARD",
            "RoleArn": get_att(ROLE_IDS["statemachine"], "Arn"),
            "DefinitionString": sub(self.portable.text(asl.render(self.a.definition))),
            "LoggingConfiguration": {
                "Level": "ALL", "IncludeExecutionData": False,
                "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": get_att(logs, "Arn")}}]},
            "TracingConfiguration": {"Enabled": True},
        }, depends_on=self._policy_of("statemachine"))
        self.output("StateMachineArn", ref(STATE_MACHINE), "State machine ARN")
        self.output("StateMachineName", get_att(STATE_MACHINE, "Name"), "State machine name")

    def version(self) -> None:
        """Each change of the state machine publishes a version, and the alias `live` moves to it.

        The version's logical id carries the digest of what makes a revision, so a changed machine
        is a new resource (CloudFormation publishes a version when it creates one) and the old one
        leaves the template. Versions are retained, so the one before stays in the account for
        `stepkit rollback`. StateMachineRevisionId makes the version the revision this very update
        made (and orders it after the machine's update)."""
        digest = revision_digest(self.resources[STATE_MACHINE])
        version = f"{VERSION_PREFIX}{digest}"
        self.add(version, "AWS::StepFunctions::StateMachineVersion", {
            "StateMachineArn": ref(STATE_MACHINE),
            "StateMachineRevisionId": get_att(STATE_MACHINE, "StateMachineRevisionId"),
            "Description": f"stepkit {digest}: {self.p.name}",
        }, taggable=False, retain=True)
        self.add(STATE_MACHINE_ALIAS, "AWS::StepFunctions::StateMachineAlias", {
            "Name": ALIAS,
            "Description": f"The version of {self.p.name} that runs (schedule, stepkit run); stepkit rollback moves it",
            "RoutingConfiguration": [{"StateMachineVersionArn": ref(version), "Weight": 100}],
        }, taggable=False)
        self.output("StateMachineVersionArn", ref(version), "State machine version this deploy published")
        self.output("StateMachineAliasArn", ref(STATE_MACHINE_ALIAS), f"Alias {ALIAS!r}: what runs start")

    def schedule(self) -> None:
        s = self.p.schedule
        self.add("ScheduleRole", "AWS::IAM::Role", {
            "RoleName": f"{self.p.resource_prefix}-schedule",
            "AssumeRolePolicyDocument": _trust("events.amazonaws.com"),
            # Step Functions authorizes a start through an alias on the unqualified ARN; the qualifier
            # condition keeps this role to the alias (Step Functions guide: auth-version-alias).
            "Policies": [{"PolicyName": "start-pipeline", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "states:StartExecution", "Resource": ref(STATE_MACHINE),
                 "Condition": {"StringEquals": {"states:StateMachineQualifier": ALIAS}}}]}}],
        })
        self.add(SCHEDULE, "AWS::Events::Rule", {
            "Name": self.n.schedule_rule,
            "Description": f"Starts {self.p.name} ({s.expression}, UTC)",
            "ScheduleExpression": s.expression,
            # Created either way so turning it on is a one-line change with no new resources.
            "State": "ENABLED" if s.enabled else "DISABLED",
            # The alias's ARN is the machine's plus ":live"; written out (with DependsOn for the order)
            # rather than a Ref, which moto's CloudFormation cannot resolve for an alias.
            "Targets": [{"Id": "StartPipeline", "Arn": sub(f"${{{STATE_MACHINE}}}:{ALIAS}"),
                         "RoleArn": get_att("ScheduleRole", "Arn"), "Input": "{}"}],
        }, taggable=False, depends_on=[STATE_MACHINE_ALIAS])
        self.output("ScheduleRuleName", ref(SCHEDULE), "EventBridge schedule rule")

    def catalog(self) -> None:
        aws = self.p.aws
        self.add("Database", "AWS::Glue::Database", {
            "CatalogId": ref("AWS::AccountId"),
            "DatabaseInput": {"Name": aws.database, "Description": f"Tables of {self.p.name} (stepkit)"},
        }, taggable=False, retain=True)
        self.output("DatabaseName", ref("Database"), "Glue/Athena database")
        if aws.workgroup == SHARED_WORKGROUP:
            return
        cutoff_gb = (self.p.cost_alarm or CostAlarm(threshold_usd=1)).athena_bytes_scanned_cutoff_gb
        self.add("WorkGroup", "AWS::Athena::WorkGroup", {
            "Name": aws.workgroup,
            "Description": f"Queries of {self.p.name}; each is cancelled past {cutoff_gb} GB scanned",
            "RecursiveDeleteOption": False,
            "WorkGroupConfiguration": {
                # Cost guard: at $5/TB, one runaway query costs at most cutoff_gb * $0.005.
                "BytesScannedCutoffPerQuery": cutoff_gb * 1_000_000_000,
                # Not enforced: Athena fails a CTAS that sets external_location in a workgroup that
                # overrides client-side settings, and every CTAS stage writes to its own location.
                # The per-query cutoff applies to every query in the workgroup either way.
                "EnforceWorkGroupConfiguration": False,
                "PublishCloudWatchMetricsEnabled": True,
                "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
                "ResultConfiguration": {"OutputLocation": self.n.query_results},
            },
        })
        self.output("WorkGroupName", ref("WorkGroup"), "Athena workgroup")

    def cost_guard(self) -> None:
        alarm = self.p.cost_alarm
        if alarm is None:
            return
        self.add("CostAlertTopic", "AWS::SNS::Topic", {"TopicName": f"{self.p.resource_prefix}-cost-alerts"})
        self.add("CostAlertTopicPolicy", "AWS::SNS::TopicPolicy", {
            "Topics": [ref("CostAlertTopic")],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "BudgetsPublish", "Effect": "Allow", "Principal": {"Service": "budgets.amazonaws.com"},
                "Action": "sns:Publish", "Resource": ref("CostAlertTopic"),
                "Condition": {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}}]},
        }, taggable=False)
        subscribers: list[dict[str, Any]] = [{"SubscriptionType": "SNS", "Address": ref("CostAlertTopic")}]
        if alarm.email:
            subscribers.append({"SubscriptionType": "EMAIL", "Address": alarm.email})
        notify = [
            {"Notification": {"NotificationType": kind, "ComparisonOperator": "GREATER_THAN",
                              "Threshold": 100, "ThresholdType": "PERCENTAGE"}, "Subscribers": subscribers}
            for kind in ("ACTUAL", "FORECASTED")
        ]
        self.add("CostBudget", "AWS::Budgets::Budget", {
            "Budget": {"BudgetName": f"{self.p.resource_prefix}-monthly-cost", "BudgetType": "COST",
                       "TimeUnit": "MONTHLY", "BudgetLimit": {"Amount": alarm.threshold_usd, "Unit": "USD"}},
            "NotificationsWithSubscribers": notify,
        }, taggable=False, depends_on=["CostAlertTopicPolicy"])
        self.output("CostBudgetName", ref("CostBudget"), "Monthly cost budget")
        self.output("CostAlertTopicArn", ref("CostAlertTopic"), "SNS topic of cost alerts (subscribe to it)")

    def build(self) -> dict[str, Any]:
        self.roles()
        self.declared()
        self.state_machine()
        self.version()
        self.schedule()
        self.alerts()
        self.catalog()
        self.cost_guard()
        return {
            "AWSTemplateFormatVersion": "2010-09-09",
            # CloudFormation counts the description in bytes (1,024): cut the text at 900 bytes, not characters.
            "Description": f"{self.p.name}: {self.p.description}".strip().rstrip(":").encode()[:900]
                           .decode(errors="ignore") + " (stepkit; do not edit, recompile)",
            "Metadata": {"stepkit": {
                "pipeline": self.p.name,
                "cost_guard": "AWS::Budgets::Budget: billing metrics (AWS/Billing EstimatedCharges) exist only in "
                              "us-east-1 and need billing alerts enabled; a budget works from any region.",
                "workgroup": "created with a bytes-scanned cutoff per query" if self.p.aws.workgroup != SHARED_WORKGROUP
                             else "'primary' exists in every account; no workgroup (and no cutoff) is created",
                "retained": "Glue database, ECR repositories and log groups are kept on delete or replacement; "
                            "state machine versions are kept when a deploy publishes the next one (for rollback)",
                "versions": f"each change of the state machine publishes a version; alias {ALIAS!r} points at it "
                            "and the schedule starts the alias",
            }},
            "Parameters": self.parameters,
            "Resources": self.resources,
            "Outputs": self.outputs,
        }


def build(artifacts: "Artifacts") -> dict[str, Any]:
    return _Builder(artifacts).build()


def render(template: dict[str, Any]) -> str:
    return json.dumps(template, indent=1, sort_keys=True) + "\n"
