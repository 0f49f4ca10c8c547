"""`stepkit deploy` given a stack name AWS refuses, a second stack for one resource_prefix, or a change
set that fails (issue 11, item 11): one line, exit 1, no traceback, no empty stack left behind. On moto."""
from __future__ import annotations

import boto3
import pytest
from click.testing import CliRunner

from stepkit.cli import main
from tests.aws.conftest import BUCKET, ENV_FILE, PIPELINE, REGION


def deploy(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["deploy", str(PIPELINE), "--env-file", str(ENV_FILE), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, [x for x in result.stderr.splitlines() if ": warning: " not in x]


def stacks() -> dict[str, str]:
    summaries = boto3.client("cloudformation", region_name=REGION).list_stacks()["StackSummaries"]
    return {s["StackName"]: s["StackStatus"] for s in summaries}


def uploads() -> list[str]:
    return [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.mark.parametrize("name", ["bad_name!", "1stack", "-x", "a" * 129, "a b", "stack\n"])
def test_a_stack_name_aws_refuses_is_refused_before_any_call(aws, name):
    code, lines = deploy("--stack-name", name)
    assert code == 1
    assert lines == [f"--stack-name {name!r}: a CloudFormation stack name is 1-128 letters, digits and '-', "
                     "starting with a letter"]
    assert stacks() == {} and uploads() == []


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_second_stack_for_one_resource_prefix_is_refused(aws, dry_run):
    assert deploy()[0] == 0
    code, lines = deploy("--stack-name", "second-stack", *(["--dry-run"] if dry_run else []))
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("stack second-stack does not exist but IAM role "
                                                   "ai-agent-predict-age-sfn does: resource_prefix"), lines
    assert stacks() == {"ai-agent-predict-age": "CREATE_COMPLETE"}


def test_a_failed_create_leaves_no_empty_stack(aws, monkeypatch):
    """A CREATE change set that AWS refuses (here: a required parameter left out) made an empty
    REVIEW_IN_PROGRESS stack; deploy deletes it and says so."""
    from stepkit.aws.deploy import Deployer

    monkeypatch.setattr(Deployer, "parameters", lambda self, *a: [])
    code, lines = deploy()
    assert code == 1
    assert lines[-1].startswith("deploy of stack ai-agent-predict-age failed: cloudformation:ExecuteChangeSet: "
                                "ValidationError: Missing parameter CleanupCodeKey")
    assert lines[-1].endswith("; the empty stack ai-agent-predict-age it made was deleted")
    assert stacks() == {"ai-agent-predict-age": "DELETE_COMPLETE"}


def test_without_the_cleanup_the_stack_would_stay(aws, monkeypatch):
    """The test above fails if the cleanup breaks: moto keeps the stack REVIEW_IN_PROGRESS."""
    from stepkit.aws.deploy import Deployer

    monkeypatch.setattr(Deployer, "parameters", lambda self, *a: [])
    monkeypatch.setattr(Deployer, "remove_empty", lambda self: "")
    assert deploy()[0] == 1
    assert stacks() == {"ai-agent-predict-age": "REVIEW_IN_PROGRESS"}


def test_a_log_group_left_by_a_deleted_stack_is_found_before_any_change(aws):
    """Log groups are retained when a stack is deleted; a new stack then failed on them half-way (moto
    answered with a JSON body botocore could not parse). Deploy now finds the group before the change set,
    says to import it, and creates nothing."""
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName="/stepkit/ai-agent-predict-age/statemachine")
    code, lines = deploy()
    assert code == 1
    assert "  AWS::Logs::LogGroup /stepkit/ai-agent-predict-age/statemachine (StateMachineLogGroup) already exists: " \
           "import it (below)" in lines
    assert lines[-1].strip().startswith("aws cloudformation execute-change-set --stack-name ai-agent-predict-age")
    assert stacks() == {}


def test_sdk_errors_that_are_not_client_errors_are_one_line():
    from botocore.exceptions import ParamValidationError
    from botocore.parsers import ResponseParserError

    from stepkit.aws.session import explain

    parser = explain(ResponseParserError("Unable to parse response\n(not well-formed)"), "cloudformation:X")
    assert str(parser) == "cloudformation:X: unreadable answer from the AWS endpoint: Unable to parse response " \
                          "(not well-formed)"
    param = explain(ParamValidationError(report="Invalid bucket name \"*x\"\n"), "s3:PutObject")
    assert str(param).startswith("s3:PutObject: AWS would refuse a value: Parameter validation failed:")
    assert "\n" not in str(param)
