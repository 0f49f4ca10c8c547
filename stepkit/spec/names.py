"""Name rules AWS enforces, checked before deploy (IAM, Lambda, Step Functions and Glue name limits).

Every spec value that becomes part of an ARN, a resource name, a SQL identifier or an S3 key is
checked here as the part it becomes, in full (`fullmatch`: `$` alone matches before a final
newline). A value the rule refuses never reaches IAM: `*`, `?`, `..`, blanks, `${` and control
characters all fail these rules, so a spec cannot widen what the compiled policies grant.

Each type also publishes its rule in `stepkit schema` (pattern, maxLength). Editors read the file
before `${VAR}` substitution, so the published pattern also lets through a value that holds a
variable reference; the loader resolves it and this module checks the result.
"""
from __future__ import annotations

import re
from typing import Annotated, Callable

from pydantic import AfterValidator, Field

from stepkit.spec.reserved import DDL, QUERY, reserved

# The longest suffix stepkit appends to the resource prefix (see compiler/names.py).
LONGEST_SUFFIX = len("-task-execution")
LIMITS = {"state_machine": 80, "role": 64, "lambda": 64, "rule": 64, "map_label": 40}

# Words Athena refuses as bare identifiers (stepkit/spec/reserved.py: Hive's DDL list, Athena's and
# Trino's query lists). stepkit writes the names it creates unquoted, so those may not be reserved:
# a column appears in queries (SELECT, CTAS, INSERT INTO), a table or database in DDL too. The
# source's names, which the user cannot rename, are quoted where a statement names them instead.
SELECT_RESERVED = frozenset(w.lower() for w in QUERY)
DDL_RESERVED = frozenset(w.lower() for w in DDL)

_ATHENA_ID = re.compile(r"[a-z_][a-z0-9_]*")
# S3 bucket naming rules (s3 ug, bucketnamingrules): 3-63 of a-z 0-9 . -, a letter or digit at
# each end, no '..', not an IP address, and none of the prefixes/suffixes S3 reserves.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# Lower case letters, digits and hyphens, a letter first, a letter or digit last. The prefix
# names IAM roles, Lambda functions, the ECS cluster, ECR repositories (lower case only) and is
# the default CloudFormation stack name ([A-Za-z][A-Za-z0-9-]*): this fits every one of them.
_RESOURCE = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
# One part of an S3 key stepkit grants access under: no wildcard, no '.'/'..' part, no blank.
_KEY_PART = re.compile(r"[A-Za-z0-9!_.=-]+")
_WORKGROUP = re.compile(r"[A-Za-z0-9._-]{1,128}")  # athena CreateWorkGroup Name
# Fargate task names become ECR repository names and task families (hyphens for underscores):
# lower case, a letter first, no separator last.
_TASK = re.compile(r"[a-z]([a-z0-9_]*[a-z0-9])?")
# AWS's forbidden characters in state names, and a quote: stepkit's guards address stages as
# $.done['NAME'] (compiler/wiring.py).
_STATE_NAME_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"'#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")
# A value holding a variable reference, as an editor sees it before substitution.
_HOLDS_VARIABLE = r"\$\{"


def _checked(check: Callable[[str], str], pattern: str, max_length: int | None = None, **extra) -> object:
    """A str type validated by `check`, whose JSON Schema shows `pattern` (and maxLength)."""
    schema: dict = {"pattern": f"^(?:{pattern})$|{_HOLDS_VARIABLE}", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return Annotated[str, AfterValidator(check), Field(json_schema_extra=schema)]


def _identifier(value: str, words: frozenset[str]) -> str:
    if not _ATHENA_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an Athena identifier (lower-case letters, digits and underscore, "
            "not starting with a digit)"
        )
    if len(value) > 255:
        raise ValueError(f"{value!r} is longer than Athena's 255 characters")
    if value in words:
        raise ValueError(f"{value!r} is a reserved word in Athena {reserved(value)} (a statement naming it bare "
                         "fails there); choose another name")
    return value


def athena_identifier(value: str) -> str:
    """A table or database name."""
    return _identifier(value, SELECT_RESERVED | DDL_RESERVED)


def column_name(value: str) -> str:
    """A column stepkit creates (a feature, the target, a model)."""
    return _identifier(value, SELECT_RESERVED)


def source_name(value: str) -> str:
    """A name of the source, which exists already: any identifier (quoted in statements when reserved)."""
    return _identifier(value, frozenset())


def bucket_name(value: str) -> str:
    if (not _BUCKET.fullmatch(value) or ".." in value or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value)
            or value.startswith(_BUCKET_RESERVED_PREFIXES) or value.endswith(_BUCKET_RESERVED_SUFFIXES)):
        raise ValueError(
            f"{value!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit, no '..')"
        )
    return value


def resource_prefix(value: str) -> str:
    if not _RESOURCE.fullmatch(value):
        raise ValueError(f"{value!r} may hold only lower-case letters, digits and '-', starting with a letter and "
                         "ending with a letter or digit (it names roles, functions, ECR repositories and the stack)")
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


S3_PREFIX_MAX = 256


def s3_prefix(value: str) -> str:
    value = value.strip("/")
    parts = value.split("/")
    if not value or any(p in ("", ".", "..") or not _KEY_PART.fullmatch(p) for p in parts):
        raise ValueError(f"{value!r} is not an S3 prefix stepkit can grant access under: one or more parts like "
                         "'predict-age' or 'ml/predict-age', each of letters, digits and ! _ . = -, "
                         "none '.' or '..'")
    if len(value) > S3_PREFIX_MAX:
        raise ValueError(f"an S3 prefix of {len(value)} characters; at most {S3_PREFIX_MAX}")
    return value


def s3_location(value: str) -> str:
    """`s3://bucket/key/`: the bucket as a bucket name, the key as an S3 prefix (at least one part)."""
    if not value.startswith("s3://"):
        raise ValueError("must be an s3:// URI like s3://bucket/path/")
    bucket, _, key = value.removeprefix("s3://").partition("/")
    bucket_name(bucket)
    if not key.strip("/"):
        raise ValueError(f"{value!r} is a whole bucket: name the folder of the source table, like "
                         f"s3://{bucket}/path/ (stepkit grants read access under it only)")
    return f"s3://{bucket}/{s3_prefix(key)}/"


def workgroup(value: str) -> str:
    if not _WORKGROUP.fullmatch(value):
        raise ValueError(f"{value!r} is not an Athena workgroup name (1-128 letters, digits, '.', '_' and '-')")
    return value


def task_name(value: str) -> str:
    if not _TASK.fullmatch(value) or len(value) > 64:
        raise ValueError(f"{value!r} is not a task name: 1-64 lower-case letters, digits and '_', starting with a "
                         "letter and not ending with '_' (it names an ECR repository and a task family)")
    return value


AthenaIdentifier = _checked(athena_identifier, r"[a-z_][a-z0-9_]*", 255)
ColumnName = _checked(column_name, r"[a-z_][a-z0-9_]*", 255)
SourceName = _checked(source_name, r"[a-z_][a-z0-9_]*", 255)
BucketName = _checked(bucket_name, r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", 63)
ResourcePrefix = _checked(resource_prefix, r"[a-z]([a-z0-9-]*[a-z0-9])?", 64 - LONGEST_SUFFIX)
StateName = Annotated[str, AfterValidator(state_name), Field(max_length=80)]
S3Prefix = _checked(s3_prefix, r"/*[A-Za-z0-9!_.=-]+(/[A-Za-z0-9!_.=-]+)*/*", S3_PREFIX_MAX + 2)
S3Location = _checked(s3_location, r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.=-]+(/[A-Za-z0-9!_.=-]+)*/?")
WorkGroup = _checked(workgroup, r"[A-Za-z0-9._-]{1,128}", 128)
TaskName = _checked(task_name, r"[a-z]([a-z0-9_]*[a-z0-9])?", 64)


def _rule(pattern: str, what: str, max_length: int) -> object:
    """A str type that must match `pattern` in full; `what` says what it must look like."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > max_length or not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return _checked(check, pattern, max_length)


SubnetId = _rule(r"subnet-[0-9a-f]{8}([0-9a-f]{9})?", "a subnet id (subnet- and 8 or 17 hex digits)", 24)
SecurityGroupId = _rule(r"sg-[0-9a-f]{8}([0-9a-f]{9})?", "a security group id (sg- and 8 or 17 hex digits)", 20)
# An image reference as ECS takes it: up to 255 letters, digits and - _ : . / # @ (ecs ContainerDefinition).
ImageUri = _rule(r"[A-Za-z0-9][A-Za-z0-9._:/#@-]*", "a container image (up to 255 letters, digits and "
                 "- _ : . / # @, like 123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag)", 255)
# The WHATWG form rule for an e-mail address (the cost budget's subscriber).
Email = _rule(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
              r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+", "an e-mail address", 254)
# The pipeline name is a tag value on every resource (tag values: letters, digits, spaces and
# _ . : / = + - @, at most 256) and is quoted in resource descriptions of at most 256 characters.
PipelineName = _rule(r"[A-Za-z0-9]([A-Za-z0-9 _.:/=+@-]*[A-Za-z0-9_.:/=+@-])?", "a pipeline name (letters, "
                     "digits, spaces and _ . : / = + - @, a letter or digit first, no space last; at most 128 "
                     "characters)", 128)


def worker_arg(value: str) -> str:
    # Each argument is a string literal of an intrinsic function (States.Array): a line break or
    # tab there is refused by Step Functions' linters.
    if not value or len(value) > 1024 or re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", value):
        raise ValueError(f"{value!r} is not a worker argument: 1-1024 characters, no line break, tab or other "
                         "control character")
    return value


WorkerArg = Annotated[str, AfterValidator(worker_arg), Field(min_length=1, max_length=1024)]

_REGION = r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d"
_FUNCTION_ARN = (rf"arn:aws(-[a-z]+)*:lambda:{_REGION}:\d{{12}}:function:[A-Za-z0-9_-]{{1,64}}"
                 r"(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?")


def function_ref(value: str) -> str:
    """A Lambda function: a name (stepkit prefixes it with resource_prefix) or a full ARN."""
    if value.startswith("arn:"):
        if not re.fullmatch(_FUNCTION_ARN, value):
            raise ValueError(f"{value!r} is not a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME, "
                             "optionally :VERSION or :ALIAS)")
    elif not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise ValueError(f"{value!r} is not a Lambda function name (letters, digits, '-' and '_') or ARN")
    return value


FunctionRef = _checked(function_ref, rf"[A-Za-z0-9_-]{{1,64}}|{_FUNCTION_ARN}", 256)
