"""boto3 clients for stepkit, and the one-line errors users see when an AWS call fails.

Every client uses botocore's `standard` retry mode (throttling and transient errors retried with
backoff and jitter), and honours `AWS_ENDPOINT_URL` (boto3 reads it itself; the tests point it at
moto). Each call goes through `calling()`, which turns botocore exceptions into `AwsError`s that
name the IAM action (`states:StartExecution`), so a missing permission is fixable from the message.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Any, Iterator

from stepkit.errors import AwsError

MAX_ATTEMPTS = 8
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
          "AuthorizationError", "NotAuthorized"}
THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
             "ProvisionedThroughputExceededException", "SlowDown"}
NO_REGION = "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or pass --region"
BAD_CREDENTIALS = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                   "InvalidAccessKeyId"}


def explain(error: Exception, action: str) -> AwsError | None:
    """The user's one line for a botocore error; None for errors that are stepkit's bugs."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    if isinstance(error, bx.NoCredentialsError):
        return AwsError("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                        "or run `aws configure` / `aws sso login`")
    if isinstance(error, bx.NoRegionError):
        return AwsError(NO_REGION)
    if isinstance(error, (bx.TokenRetrievalError, bx.SSOTokenLoadError, bx.UnauthorizedSSOTokenError)):
        return AwsError(f"{action}: AWS SSO session expired or missing: run `aws sso login`")
    if isinstance(error, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return AwsError(f"{action}: cannot reach the AWS endpoint ({error}); check the network or AWS_ENDPOINT_URL")
    if isinstance(error, ResponseParserError):
        # The endpoint answered with something the SDK cannot read (an error body in another protocol).
        body = " ".join(str(error).split())
        return AwsError(f"{action}: unreadable answer from the AWS endpoint: {body[:300]}")
    if isinstance(error, bx.ParamValidationError):
        # A value the API refuses before sending: the pipeline's checks should have caught it.
        return AwsError(f"{action}: AWS would refuse a value: {' '.join(str(error).split())}")
    if isinstance(error, bx.ClientError):
        err = error.response.get("Error", {})
        code, message = str(err.get("Code", "")), str(err.get("Message", "")).strip()
        if message.startswith("<"):
            # An XML error body under a JSON protocol (some endpoints, moto): read its code and message.
            inner_code, inner_msg = re.search(r"<Code>(.*?)</Code>", message), re.search(r"<Message>(.*?)</Message>", message)
            code = inner_code.group(1) if inner_code else code
            message = inner_msg.group(1) if inner_msg else ""
        message = " ".join(message.split())  # always one line
        if code in EXPIRED:
            return AwsError(f"{action}: AWS credentials expired ({code}): refresh them (`aws sso login`, or new "
                            "session credentials) and retry")
        if code in DENIED or code == "403":
            return AwsError(f"{action}: access denied: the caller needs {action}" + (f" ({message})" if message else ""))
        if code in THROTTLED:
            return AwsError(f"{action}: throttled by AWS ({code}) after {MAX_ATTEMPTS} attempts with backoff: "
                            "retry later, or ask for a higher quota")
        if code in BAD_CREDENTIALS:
            return AwsError(f"{action}: AWS rejected the credentials ({code}): check AWS_PROFILE / access keys")
        return AwsError(f"{action}: {code}: {message}" if message else f"{action}: {code}")
    return None


@contextmanager
def calling(action: str) -> Iterator[None]:
    """Run AWS calls; a botocore failure becomes one `AwsError` line naming `action`."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    try:
        yield
    except (BotoCoreError, ClientError, ResponseParserError) as e:
        mapped = explain(e, action)
        if mapped is None:
            raise
        raise mapped from None


class _Paginator:
    def __init__(self, paginator: Any, action: str):
        self._p, self._action = paginator, action

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        with calling(self._action):
            yield from self._p.paginate(**kwargs)


class Client:
    """A boto3 client whose every call maps errors through `calling`, with the IAM action name."""

    def __init__(self, client: Any):
        self._c = client
        self.raw = client  # for calls whose errors the caller handles itself
        self.prefix = client.meta.service_model.signing_name
        self.meta = client.meta
        self.exceptions = client.exceptions

    def _action(self, method: str) -> str:
        op = self._c.meta.method_to_api_mapping.get(method, method)
        return f"{self.prefix}:{op}"

    def get_paginator(self, method: str) -> _Paginator:
        return _Paginator(self._c.get_paginator(method), self._action(method))

    def __getattr__(self, method: str) -> Any:
        fn = getattr(self._c, method)
        if not callable(fn):
            return fn
        action = self._action(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            with calling(action):
                return fn(*args, **kwargs)

        return call


class Session:
    """One AWS session per command. `region=None` takes the environment's (AWS_REGION...)."""

    def __init__(self, region: str | None = None, profile: str | None = None):
        import boto3
        from botocore.config import Config

        # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what most tools (and the AWS CLI v2) set.
        region = region or os.environ.get("AWS_REGION") or None
        with calling("session"):
            self._s = boto3.session.Session(region_name=region, profile_name=profile)
        self.region = region or self._s.region_name
        if not self.region:
            raise AwsError(NO_REGION)
        self._config = Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                              user_agent_extra="stepkit")
        self._clients: dict[str, Client] = {}

    @property
    def endpoint(self) -> str | None:
        return os.environ.get("AWS_ENDPOINT_URL")

    def client(self, service: str, attempts: int | None = None) -> Client:
        """`attempts`: fewer tries than MAX_ATTEMPTS, for an optional check whose API may not answer at all
        (ValidateStateMachineDefinition behind an endpoint that lacks it answers 500 every time)."""
        from botocore.config import Config

        key = service if attempts is None else f"{service}/{attempts}"
        if key not in self._clients:
            config = self._config if attempts is None else self._config.merge(
                Config(retries={"mode": "standard", "total_max_attempts": attempts}))
            with calling(f"{service}:client"):
                self._clients[key] = Client(self._s.client(service, region_name=self.region, config=config))
        return self._clients[key]

    def account(self) -> str:
        return self.client("sts").get_caller_identity()["Account"]
