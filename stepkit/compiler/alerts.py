"""Run alerts in the stack: an EventBridge rule on the state machine's ends, stepkit's alerts Lambda, an SNS topic.

Step Functions sends "Step Functions Execution Status Change" events to the default event bus. The
rule takes the pipeline's FAILED, TIMED_OUT and ABORTED ones (SUCCEEDED too with `alerts.on_success`),
only of top-level executions: the execution ARN prefix `execution:MACHINE:` leaves out a Distributed
Map's children (`execution:MACHINE/LABEL:...`), whose parent's alert covers them. The Lambda
(workers/alerts) names the stage from the execution's history, which the event lacks, and publishes
to the topic; `alerts.email` subscribes an address.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepkit.ir.cfn import PARAM_CODE_KEY, Output, Portable, Resource, get_att, log_group, parameter, ref

if TYPE_CHECKING:
    from stepkit.compiler.build import Artifacts

ALERTS_FUNCTION = "alerts"
HANDLER = "stepkit.workers.alerts.handler.handler"
TOPIC, RULE, FUNCTION, ROLE = "RunAlertTopic", "RunAlertRule", "RunAlertFunction", "RunAlertRole"
ENDS = ["FAILED", "TIMED_OUT", "ABORTED"]
DETAIL_TYPE = "Step Functions Execution Status Change"


def event_pattern(machine_arn: str, on_success: bool) -> dict[str, Any]:
    """The rule's pattern (machine_arn: the unqualified state machine ARN)."""
    executions = machine_arn.replace(":stateMachine:", ":execution:", 1) + ":"
    return {"source": ["aws.states"], "detail-type": [DETAIL_TYPE], "detail": {
        "status": ENDS + (["SUCCEEDED"] if on_success else []),
        "executionArn": [{"prefix": executions}]}}


def resources(a: "Artifacts", failure_path: list[str]) -> list[Resource]:
    p, n = a.context.p, a.context.names
    portable = Portable(p.aws.account_id, p.aws.region)
    fn = n.function(ALERTS_FUNCTION)
    logs = log_group("RunAlertFunctionLogGroup", f"/aws/lambda/{fn}", "the run-alerts Lambda")
    executions = n.arn("states", f"execution:{n.state_machine}:*")
    out = [
        Resource(TOPIC, "AWS::SNS::Topic", {"TopicName": f"{p.resource_prefix}-run-alerts",
                                            "DisplayName": f"{p.name} runs"[:100]},
                 outputs=(Output("RunAlertTopicArn", ref(TOPIC), "SNS topic of run alerts (subscribe to it)"),)),
        logs,
        Resource(ROLE, "AWS::IAM::Role", {
            "RoleName": f"{p.resource_prefix}-alerts",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "run-alerts", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                # The failed stage is in the history; older events lack the error, which DescribeExecution has.
                {"Sid": "ReadTheRun", "Effect": "Allow",
                 "Action": ["states:DescribeExecution", "states:GetExecutionHistory"],
                 "Resource": portable.string(executions)},
                {"Sid": "Publish", "Effect": "Allow", "Action": "sns:Publish", "Resource": ref(TOPIC)},
                {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": portable.string(n.arn("logs", f"log-group:/aws/lambda/{fn}:*"))},
            ]}}],
        }),
        Resource(FUNCTION, "AWS::Lambda::Function", {
            "FunctionName": fn,
            "Description": f"stepkit run alerts for {p.name}: names the failed stage, publishes to SNS",
            "Runtime": "python3.12",
            "Architectures": [p.compute.lambda_.architecture],
            "Handler": HANDLER,
            "Code": {"S3Bucket": p.aws.bucket, "S3Key": ref(PARAM_CODE_KEY)},
            "Role": get_att(ROLE, "Arn"),
            "MemorySize": 128,
            # A history is read a thousand events a call, newest first: a few calls at most.
            "Timeout": 60,
            "Environment": {"Variables": {"STEPKIT_PIPELINE": p.name, "STEPKIT_TOPIC_ARN": ref(TOPIC),
                                          "STEPKIT_FAILURE_PATH": ",".join(failure_path)}},
            "LoggingConfig": {"LogGroup": ref(logs.logical_id)},
        }, outputs=(Output("RunAlertFunctionArn", get_att(FUNCTION, "Arn"), "Run-alerts Lambda"),),
            parameters=(parameter(PARAM_CODE_KEY, Type="String",
                                  Description="S3 key (in aws.bucket) of stepkit's Lambda code; set by stepkit deploy."),)),
        Resource(RULE, "AWS::Events::Rule", {
            "Name": f"{p.resource_prefix}-run-alerts",
            "Description": f"Ends of {p.name} runs -> the run-alerts Lambda -> SNS",
            "EventPattern": portable.walk(event_pattern(n.state_machine_arn, p.alerts.on_success)),
            "State": "ENABLED",
            # EventBridge retries a failed delivery; an alert older than a day is of no use.
            "Targets": [{"Id": "RunAlert", "Arn": get_att(FUNCTION, "Arn"),
                         "RetryPolicy": {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 86400}}],
        }, taggable=False, outputs=(Output("RunAlertRuleName", ref(RULE), "EventBridge rule of run alerts"),)),
        Resource("RunAlertPermission", "AWS::Lambda::Permission", {
            "Action": "lambda:InvokeFunction", "FunctionName": ref(FUNCTION), "Principal": "events.amazonaws.com",
            "SourceArn": get_att(RULE, "Arn")}, taggable=False),
    ]
    if p.alerts.email:
        out.append(Resource("RunAlertEmail", "AWS::SNS::Subscription", {
            "TopicArn": ref(TOPIC), "Protocol": "email", "Endpoint": p.alerts.email}, taggable=False))
    return out


__all__ = ["ALERTS_FUNCTION", "ENDS", "event_pattern", "resources"]
