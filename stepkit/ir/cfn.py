"""Small CloudFormation helpers: intrinsic functions, tags, and account/region as pseudo parameters."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

TAG_PIPELINE = "stepkit:pipeline"
TAG_MANAGED = "stepkit:managed-by"
MANAGED_BY = "stepkit"


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def tags(pipeline: str) -> list[dict[str, str]]:
    """The tags every taggable resource gets (the stack carries them too, for the rest)."""
    return [{"Key": TAG_MANAGED, "Value": MANAGED_BY}, {"Key": TAG_PIPELINE, "Value": pipeline}]


def stack_tags(pipeline: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags(pipeline)}


class Portable:
    """Turns the compiler's literal account and region back into pseudo parameters.

    The compiler writes ARNs with the spec's account and region so compiled files read plainly;
    in the template they become `${AWS::AccountId}` / `${AWS::Region}`, so the stack is built from
    where it is deployed. Only the ARN positions are replaced (`:REGION:ACCOUNT:`, `::ACCOUNT:`),
    never free text. A literal `${` is escaped as `${!` as Fn::Sub requires.
    """

    def __init__(self, account_id: str, region: str):
        self._pattern = re.compile(
            rf":{re.escape(region)}:{re.escape(account_id)}:|:{re.escape(region)}::|::{re.escape(account_id)}:"
        )
        self._account, self._region = account_id, region

    def _swap(self, m: re.Match[str]) -> str:
        return (m.group(0)
                .replace(f":{self._region}:", ":${AWS::Region}:", 1)
                .replace(f":{self._account}:", ":${AWS::AccountId}:", 1))

    def text(self, value: str) -> str:
        return self._pattern.sub(self._swap, value.replace("${", "${!"))

    def string(self, value: str) -> Any:
        """A plain string when nothing is account-specific, else an Fn::Sub."""
        if not self._pattern.search(value):
            return value
        return sub(self.text(value))

    def walk(self, value: Any) -> Any:
        """Every string of a JSON-like value through `string` (for policy documents)."""
        if isinstance(value, dict):
            return {k: self.walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if isinstance(value, str):
            return self.string(value)
        return value


def logical_id(*parts: str) -> str:
    """`training` -> `Training`; `task_execution` -> `TaskExecution` (logical ids are alphanumeric)."""
    return "".join(w[:1].upper() + w[1:] for p in parts for w in re.split(r"[^A-Za-z0-9]+", p) if w)


# --- resources a block declares (the template is the union of what the blocks declare)

# Logical ids of the pipeline's four roles and their managed policies: blocks refer to them.
def role_id(role: str) -> str:
    return logical_id(role, "role")


def policy_id(role: str) -> str:
    return logical_id(role, "policy")


LOG_RETENTION_DAYS = 30
# Template parameters `stepkit deploy` sets: the image tag the task definitions run, and the S3 key of
# the cleanup Lambda's zip.
PARAM_IMAGE_TAG = "ImageTag"
PARAM_CODE_KEY = "CleanupCodeKey"
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}


@dataclass(frozen=True)
class Output:
    logical_id: str
    value: Any
    description: str


@dataclass(frozen=True)
class Resource:
    """One CloudFormation resource. Two blocks may declare the same one (the ECS cluster): the
    template keeps one, and refuses two different resources under one logical id."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    taggable: bool = True
    retain: bool = False
    depends_on: tuple[str, ...] = ()
    # Roles whose compiled policy must exist first (AWS checks some rights at creation); the
    # template adds the DependsOn when that role's policy is a resource of its own.
    after_policy_of: tuple[str, ...] = ()
    outputs: tuple[Output, ...] = ()
    # Template parameters it refers to: name -> parameter declaration.
    parameters: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def key(self) -> str:
        return json.dumps([self.type, self.properties, self.taggable, self.retain, self.depends_on,
                           self.after_policy_of], sort_keys=True, default=str)


def parameter(name: str, **declaration: Any) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return name, tuple(sorted(declaration.items()))


def log_group(lid: str, name: str, what: str) -> Resource:
    """A log group kept for LOG_RETENTION_DAYS, retained when the stack goes (it holds evidence)."""
    return Resource(lid, "AWS::Logs::LogGroup", {"LogGroupName": name, "RetentionInDays": LOG_RETENTION_DAYS},
                    retain=True, outputs=(Output(lid + "Name", ref(lid), f"Log group of {what}"),))
