"""Small CloudFormation helpers: intrinsic functions, tags, and account/region as pseudo parameters."""
from __future__ import annotations

import re
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
