"""State machine versions and the alias runs start: which version is live, and `stepkit rollback`.

Each deploy that changes the state machine publishes a version (the stack's
AWS::StepFunctions::StateMachineVersion, retained when the next one comes) and points the alias
`live` at it. The schedule and `stepkit run` start the alias, so every run records the version it
ran (DescribeExecution's stateMachineVersionArn). `rollback` moves the alias to an earlier version
through the API; the next deploy that changes the machine moves it forward again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stepkit.compiler.template import ALIAS
from stepkit.errors import AwsError, StepkitError


def alias_arn(state_machine_arn: str) -> str:
    return f"{state_machine_arn}:{ALIAS}"


def version_number(arn: str | None) -> int | None:
    """`...:stateMachine:NAME:7` -> 7; None for an unqualified or alias ARN."""
    tail = (arn or "").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() and arn and arn.count(":") >= 7 else None


def version_label(execution: dict[str, Any]) -> str:
    """How a run shows its version (DescribeExecution / ListExecutions item): `v7`, `v7 (live)` when
    started through the alias, `latest` when started on the unqualified ARN (no version)."""
    number = version_number(execution.get("stateMachineVersionArn"))
    if number is None:
        return "latest"
    alias = (execution.get("stateMachineAliasArn") or "").rsplit(":", 1)[-1]
    return f"v{number} ({alias})" if alias else f"v{number}"


@dataclass(frozen=True)
class Live:
    """Where the alias points (one version: stepkit never splits traffic)."""

    alias_arn: str
    version_arn: str

    @property
    def number(self) -> int:
        n = version_number(self.version_arn)
        if n is None:
            raise AwsError(f"alias {self.alias_arn} points at {self.version_arn}, not a version")
        return n

    @staticmethod
    def of(alias: dict[str, Any]) -> "Live":
        routes = sorted(alias.get("routingConfiguration", []), key=lambda r: -r.get("weight", 0))
        if not routes:
            raise AwsError(f"alias {alias.get('stateMachineAliasArn')} routes to no version")
        return Live(alias["stateMachineAliasArn"], routes[0]["stateMachineVersionArn"])


def live(sfn: Any, state_machine_arn: str) -> Live | None:
    """The alias `live`, or None when the machine has none (deployed before stepkit published versions)."""
    from botocore.exceptions import ClientError

    try:
        return Live.of(sfn.raw.describe_state_machine_alias(stateMachineAliasArn=alias_arn(state_machine_arn)))
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("ResourceNotFound", "StateMachineDoesNotExist"):
            return None
        from stepkit.aws.session import explain

        raise explain(e, "states:DescribeStateMachineAlias") or e from None


def describe_version(sfn: Any, state_machine_arn: str, number: int) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return sfn.raw.describe_state_machine(stateMachineArn=f"{state_machine_arn}:{number}")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "StateMachineDoesNotExist":
            return None  # deleted: version numbers are never reused, so gaps happen
        from stepkit.aws.session import explain

        raise explain(e, "states:DescribeStateMachine") or e from None


def previous(sfn: Any, state_machine_arn: str, below: int) -> int | None:
    """The newest version below `below` that still exists. (DescribeStateMachine on each number down,
    rather than ListStateMachineVersions: a few calls, and it runs on moto too.)"""
    for number in range(below - 1, 0, -1):
        if describe_version(sfn, state_machine_arn, number) is not None:
            return number
    return None


def describe_live(sfn: Any, state_machine_arn: str) -> str:
    """One line for `stepkit deploy`: what runs start now."""
    current = live(sfn, state_machine_arn)
    if current is None:
        return f"live: no alias {ALIAS!r} on {state_machine_arn.rsplit(':', 1)[-1]}: runs start its latest revision"
    return f"live: version {current.number} (alias {ALIAS}; `stepkit rollback` goes back one)"


def rollback(sfn: Any, state_machine_arn: str, to: int | None = None) -> tuple[int, int]:
    """Point the alias at version `to` (default: the one before the live one); returns (from, to)."""
    current = live(sfn, state_machine_arn)
    name = state_machine_arn.rsplit(":", 1)[-1]
    if current is None:
        raise StepkitError(f"{name} has no alias {ALIAS!r}: deploy with this stepkit first (`stepkit deploy PIPELINE`)")
    now = current.number
    if to is None:
        to = previous(sfn, state_machine_arn, now)
        if to is None:
            raise StepkitError(f"{name}: version {now} is the first one there is; nothing to roll back to")
    elif to == now:
        raise StepkitError(f"{name}: version {to} is already live")
    elif describe_version(sfn, state_machine_arn, to) is None:
        raise StepkitError(f"{name}: there is no version {to} (live: {now})")
    sfn.update_state_machine_alias(stateMachineAliasArn=current.alias_arn, routingConfiguration=[
        {"stateMachineVersionArn": f"{state_machine_arn}:{to}", "weight": 100}])
    return now, to
