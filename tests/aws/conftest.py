"""An empty moto account per test (the server and its env: tests/conftest.py)."""
from __future__ import annotations

import urllib.request
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
ENV_FILE = ROOT / "pipelines" / "example.env"
BUCKET = "stepkit-example-bucket"
REGION = "us-east-1"


@pytest.fixture
def bare_account(aws_env):
    """An empty moto account holding only the pipeline's bucket (as a brand-new account: no ECS
    service-linked role either)."""
    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{aws_env}/moto-api/reset", method="POST")).read()
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    # moto warns for each resource type its CloudFormation skips; the tests check those by cfn-lint.
    warnings.filterwarnings("ignore", message="Tried to parse AWS::")
    return aws_env


@pytest.fixture
def aws(bare_account):
    """An account ready for a first deploy: the bucket, and the ECS service-linked role (every account that
    has run ECS has it; `stepkit doctor` says how to make it)."""
    import boto3

    boto3.client("iam", region_name=REGION).create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    return bare_account


@pytest.fixture
def variables() -> dict[str, str]:
    from stepkit.cli import _variables

    return _variables((), str(ENV_FILE))


@pytest.fixture
def artifacts(variables):
    from stepkit.compiler.build import compile_file

    return compile_file(PIPELINE, variables)
