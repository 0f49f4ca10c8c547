"""moto in server mode on 127.0.0.1 (one per xdist worker), and an empty account per test.

boto3 reaches it through AWS_ENDPOINT_URL, exactly as it would reach AWS: the code under test
has no test hooks.
"""
from __future__ import annotations

import logging
import socket
import urllib.request
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
ENV_FILE = ROOT / "pipelines" / "example.env"
BUCKET = "stepkit-example-bucket"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url, monkeypatch):
    """Credentials, region and endpoint for boto3; nothing else of the host's AWS setup."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return moto_url


@pytest.fixture
def aws(aws_env):
    """An empty moto account holding only the pipeline's bucket."""
    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{aws_env}/moto-api/reset", method="POST")).read()
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    # moto warns for each resource type its CloudFormation skips; the tests check those by cfn-lint.
    warnings.filterwarnings("ignore", message="Tried to parse AWS::")
    return aws_env


@pytest.fixture
def variables() -> dict[str, str]:
    from stepkit.cli import _variables

    return _variables((), str(ENV_FILE))


@pytest.fixture
def artifacts(variables):
    from stepkit.compiler.build import compile_file

    return compile_file(PIPELINE, variables)
