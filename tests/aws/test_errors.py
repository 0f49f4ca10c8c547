"""Errors users hit, each one clear line and exit 1: credentials, region, permissions, throttling, Docker."""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from stepkit.aws.session import Session, explain
from stepkit.cli import main
from tests.aws.conftest import ENV_FILE, PIPELINE, REGION


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def one_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.parametrize("args", [
    ("runs",),
    # start_run calls the raw client: NoCredentialsError is not a ClientError and once escaped as a traceback.
    ("run", str(PIPELINE), "--env-file", str(ENV_FILE)),
])
def test_no_credentials(aws, monkeypatch, args):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, out = cli(*args)
    assert code == 1 and one_line(out).startswith("no AWS credentials found")


def test_no_region(aws, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    code, out = cli("status")
    assert code == 1 and one_line(out).startswith("no AWS region: set AWS_REGION")


@pytest.fixture
def enforced_auth(aws, monkeypatch):
    """moto checks IAM from here on; returns keys of a user allowed nothing."""
    from moto import settings

    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return key


def test_access_denied_names_the_action(enforced_auth, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", enforced_auth["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", enforced_auth["SecretAccessKey"])
    code, out = cli("runs")
    assert code == 1
    assert one_line(out).startswith("states:ListStateMachines: access denied: the caller needs states:ListStateMachines")


def test_deploy_access_denied_names_the_action(enforced_auth, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", enforced_auth["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", enforced_auth["SecretAccessKey"])
    code, out = cli("deploy", str(PIPELINE), "--env-file", str(ENV_FILE))
    assert code == 1
    # sts:GetCallerIdentity needs no permission; the bucket check is the first call refused.
    assert out.strip().splitlines()[-1].startswith("s3:ListBucket: access denied on s3://stepkit-example-bucket")


def test_unknown_keys(enforced_auth):
    code, out = cli("runs")  # the fixture's "testing" keys do not exist once moto checks
    assert code == 1 and "AWS rejected the credentials" in one_line(out)


def _client_error(code: str, message: str = "m", op: str = "StartExecution") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


@pytest.mark.parametrize("code, expected", [
    ("ExpiredToken", "states:StartExecution: AWS credentials expired (ExpiredToken): refresh them"),
    ("ExpiredTokenException", "states:StartExecution: AWS credentials expired"),
    ("RequestExpired", "states:StartExecution: AWS credentials expired"),
    ("AccessDeniedException", "states:StartExecution: access denied: the caller needs states:StartExecution (m)"),
    ("ThrottlingException", "states:StartExecution: throttled by AWS (ThrottlingException) after 8 attempts"),
    ("TooManyRequestsException", "states:StartExecution: throttled by AWS"),
    ("ValidationException", "states:StartExecution: ValidationException: m"),
])
def test_client_errors_map_to_one_line(code, expected):
    message = str(explain(_client_error(code), "states:StartExecution"))
    assert message.startswith(expected) and "\n" not in message


def test_clients_use_standard_retry_mode(aws_env):
    client = Session(region=REGION).client("stepfunctions")
    # botocore's standard mode retries throttling and transient errors with backoff and jitter;
    # stepkit only words the failure that is left after the last attempt.
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 8}


@pytest.mark.parametrize("verb", [["images", "build"], ["images", "push", "--tag", "t1"]])
def test_images_without_a_docker_engine_say_so(aws_env, monkeypatch, tmp_path, verb):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    code, out = cli(*verb, str(PIPELINE), "--env-file", str(ENV_FILE))
    assert code == 1
    assert one_line(out).startswith("docker: no Docker engine is reachable")
