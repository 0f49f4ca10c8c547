"""Name rules AWS enforces, checked before deploy (aws-facts.md, "Failure modes" 16-18)."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from stepkit.spec.reserved import reserved

_ATHENA_ID = re.compile(r"^[a-z_][a-z0-9_]*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RESOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# AWS's forbidden characters in state names, and a quote: stepkit's guards address stages as
# $.done['NAME'] (compiler/wiring.py).
_STATE_NAME_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"'#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")

# The longest suffix stepkit appends to the resource prefix (see compiler/names.py).
LONGEST_SUFFIX = len("-task-execution")
LIMITS = {"state_machine": 80, "role": 64, "lambda": 64, "rule": 64, "map_label": 40}


def athena_identifier(value: str) -> str:
    if not _ATHENA_ID.match(value):
        raise ValueError(
            f"{value!r} is not an Athena identifier (lower-case letters, digits and underscore, "
            "not starting with a digit)"
        )
    if len(value) > 255:
        raise ValueError(f"{value!r} is longer than Athena's 255 characters")
    return value


def not_reserved(value: str) -> str:
    """A name stepkit gives a table, column or database it creates: usable bare in every statement.
    (Names of the source, which the user cannot rename, are quoted where needed instead.)"""
    kind = reserved(value)
    if kind:
        raise ValueError(f"{value!r} is a reserved word in Athena {kind} (a statement naming it bare fails there); "
                         "choose another name")
    return value


def bucket_name(value: str) -> str:
    if "${" in value:  # unresolved variables are reported by the loader
        return value
    if not _BUCKET.match(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit)"
        )
    return value


def resource_prefix(value: str) -> str:
    if not _RESOURCE.match(value):
        raise ValueError(f"{value!r} may hold only letters, digits, '-' and '_', starting with a letter or digit")
    longest = 64 - LONGEST_SUFFIX
    if len(value) > longest:
        raise ValueError(
            f"{value!r} is {len(value)} characters; IAM role and Lambda names are capped at 64, "
            f"so the prefix may have at most {longest}"
        )
    return value


def state_name(value: str) -> str:
    if not value or len(value) > 80:
        raise ValueError("a state name has 1-80 characters")
    if _STATE_NAME_FORBIDDEN.search(value):
        raise ValueError(f"{value!r}: state names may not hold spaces or any of < > {{ }} [ ] ? * \" ' # % \\ ^ | ~ ` $ & , ; : /")
    return value


def s3_prefix(value: str) -> str:
    value = value.strip("/")
    if not value or "//" in value:
        raise ValueError("an S3 prefix is one or more path parts, like 'predict-age' or 'ml/predict-age'")
    return value


AthenaIdentifier = Annotated[str, AfterValidator(athena_identifier)]
# A table, column or database stepkit creates under this name.
NewAthenaName = Annotated[str, AfterValidator(athena_identifier), AfterValidator(not_reserved)]
BucketName = Annotated[str, AfterValidator(bucket_name)]
ResourcePrefix = Annotated[str, AfterValidator(resource_prefix)]
StateName = Annotated[str, AfterValidator(state_name)]
S3Prefix = Annotated[str, AfterValidator(s3_prefix)]
