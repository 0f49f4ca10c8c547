"""Property (issue 11, items 7 and 10): for any spec the schema accepts, `validate` either refuses it
with located lines (FILE:LINE:COL) or its compiled output

- grants no wildcard beyond the statements marked AWS-required: outside those (Sid ending in
  `AwsRequiresWildcard`, Resource exactly "*"), a Resource or condition value holds no `?` and at most
  one `*`, which is then its last character and follows `/` or `:` - the forms the compiler itself
  writes after a fully named ARN or key prefix (`bucket/prefix/*`, `table/db/*`, `task-definition/
  family:*`, `function:name:*`, `log-group:name:*`, `execution:machine/*`); every ARN names the
  spec's own partition, region and account, and every S3 part names a valid bucket and a key
  prefix with no blank, '.', '..' or empty part;
- has SQL that sqlglot reads as one Athena statement each, and an ASL statelint accepts;
- fits AWS's size limits (query 262,144 bytes, definition 1,048,576, template 1,000,000 and 500
  resources, role policy 10,240 characters).

Specs are the shipped pipeline with a few values replaced by hostile strings (wildcards, '..',
blanks, '${', control characters, trailing newlines, lookalikes, very long or empty text, special
numbers) or by random values of each field's own rule. Examples are derandomized (the same every
run); STEPKIT_PROPERTY_EXAMPLES raises the count for a longer search.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statelint.linter import Linter

from stepkit.cli import _variables
from stepkit.ir.asl import one_line, render
from stepkit.compiler.build import compile_file
from stepkit.errors import SpecError
from stepkit.spec.loader import read_yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = _variables((), str(ROOT / "pipelines" / "example.env"))
BASE, _ = read_yaml(ROOT / "pipelines" / "predict_age.yaml", ENV)
EXAMPLES = int(os.environ.get("STEPKIT_PROPERTY_EXAMPLES", "120"))

HOSTILE = ["*", "?", "**", "a*", "*a", "..", "../..", ".", "/", "//", " ", "", "a b", "${X}", "$${X}", "${run_id}",
           "$${run_id}", "a\n", "\n", "a\\b", "a'b", 'a"b', "{}", "\x00", "\u2028", "\u00a0", "ｓ3", "ａ",
           "arn:aws:s3:::*", "s3://*", "s3://b/*", "s3://stepkit-example-bucket/", "s3://a..b/x/", "a" * 300,
           "x" * 64, "prefix/*/x", "ml/../x", "on", "null", "1e9", "-1", "select", "date", "other", "OTHER",
           "subnet-*", "sg-*", "repo:*", "@", "a@b", "*@example.com", "arn:aws:lambda:us-east-1:123456789012:function:*"]
NUMBERS = [float("inf"), float("-inf"), float("nan"), 0, -1, 10**30, 1e308, 5e-324, -0.0, True, "898", 1.5]


def _values(rule: str) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(HOSTILE), st.from_regex(rule, fullmatch=True), st.text(max_size=20))


# Where a value is replaced: (path into the spec, the field's own rule for random valid values).
NAME = r"[a-z][a-z0-9_]{0,30}"
STRING_SITES = [
    (("aws", "bucket"), r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]"),
    (("aws", "prefix"), r"[A-Za-z0-9._-]{1,12}(/[A-Za-z0-9._-]{1,12}){0,2}"),
    (("aws", "workgroup"), r"[A-Za-z0-9._-]{1,30}"),
    (("aws", "account_id"), r"[0-9]{12}"),
    (("aws", "region"), r"[a-z]{2}-[a-z]{4,9}-[1-9]"),
    (("aws", "database"), NAME),
    (("aws", "network", "subnets", 0), r"subnet-[0-9a-f]{8}"),
    (("aws", "network", "security_groups", 0), r"sg-[0-9a-f]{17}"),
    (("source", "location"), r"s3://[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]/[A-Za-z0-9._=-]{1,10}(/[A-Za-z0-9._=-]{1,10})?/"),
    (("source", "database"), NAME),
    (("source", "table"), NAME),
    (("resource_prefix",), r"[a-z][a-z0-9-]{0,30}[a-z0-9]"),
    (("state_machine_name",), r"[A-Za-z0-9_-]{1,60}"),
    (("name",), r"[A-Za-z0-9][A-Za-z0-9 _.:/=+@-]{0,40}"),
    (("tables", "predictions"), NAME),
    (("features", 0, "name"), NAME),
    (("features", 0, "json_path"), r"\$(\.[a-z_]{1,8}){1,3}"),
    (("features", 3, "categories", 0), r"[A-Za-z0-9 _'{}-]{1,20}"),
    (("target", "name"), NAME),
    (("compute", "tasks", "training", "image"), r"[a-z0-9]{1,12}(/[a-z0-9]{1,12})?:[a-z0-9.]{1,8}"),
    (("cost_alarm", "email"), r"[a-z]{1,8}@[a-z]{1,8}\.com"),
    (("stages", 4, "name"), r"[A-Za-z0-9_-]{1,70}"),
    (("stages", 4, "args", 0), r"[A-Za-z0-9 =-]{1,20}"),
    (("stages", 13, "function"), r"[A-Za-z0-9_-]{1,40}"),
]
NUMBER_SITES = [("target", "min"), ("target", "max"), ("target", "default"), ("features", 0, "max"),
                ("batching", "batches"), ("batching", "max_concurrency"), ("sample", "percent"),
                ("stages", 5, "partitions")]

mutation = st.one_of(
    st.sampled_from(STRING_SITES).flatmap(lambda site: st.tuples(st.just(site[0]), _values(site[1]))),
    st.tuples(st.sampled_from(NUMBER_SITES), st.sampled_from(NUMBERS) | st.floats() | st.integers()),
)


def _base() -> dict[str, Any]:
    data = json.loads(json.dumps(BASE))
    data["cost_alarm"]["email"] = "ops@example.com"
    data["stages"][4]["args"] = ["--depth", "3"]
    data["stages"].append({"name": "Notify", "type": "lambda_invoke", "function": "notify", "payload": {"k": "v"}})
    return data


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


# --- the property's checks, written apart from the compiler's own ------------------------------

SPECIAL_WILDCARD = "AwsRequiresWildcard"
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _resolve_sub(value: Any, region: str, account: str) -> Any:
    """A template value as IAM receives it: Fn::Sub of the pseudo parameters resolved, Refs dropped."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        return (value["Fn::Sub"].replace("${AWS::Region}", region).replace("${AWS::AccountId}", account)
                .replace("${!", "${"))
    if isinstance(value, dict):
        return {k: _resolve_sub(v, region, account) for k, v in value.items() if k != "Ref"}
    if isinstance(value, list):
        return [_resolve_sub(v, region, account) for v in value]
    return value


def _wildcard_problems(doc: dict[str, Any], region: str, account: str) -> list[str]:
    out = []
    for st_ in doc["Statement"]:
        resources = _strings(st_.get("Resource"))
        values = resources + _strings(st_.get("Condition", {}))
        if str(st_.get("Sid", "")).endswith(SPECIAL_WILDCARD):
            if resources != ["*"]:
                out.append(f"{st_['Sid']}: an AWS-required wildcard statement with Resource {resources}")
            continue
        for v in values:
            stars = v.count("*")
            if "?" in v or stars > 1 or (stars == 1 and not (v.endswith("*") and len(v) > 1 and v[-2] in "/:")):
                out.append(f"{st_.get('Sid')}: wildcard in {v!r}")
            if re.search(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]", v):
                out.append(f"{st_.get('Sid')}: blank or control character in {v!r}")
        for r in resources:
            if not r.startswith("arn:"):
                out.append(f"{st_.get('Sid')}: Resource {r!r} is no ARN")
                continue
            partition, service, arn_region, arn_account = (r.split(":") + ["", "", "", ""])[1:5]
            if partition != "aws" or arn_region not in ("", region) or arn_account not in ("", account):
                out.append(f"{st_.get('Sid')}: {r!r} is not in the spec's partition, region and account")
            if service == "s3":
                path = r.split(":::", 1)[1]
                bucket, _, key = path.partition("/")
                parts = key.rstrip("*").rstrip("/").split("/") if key.rstrip("*") else []
                if not BUCKET.fullmatch(bucket) or ".." in bucket or any(p in ("", ".", "..") for p in parts):
                    out.append(f"{st_.get('Sid')}: S3 resource {r!r} names no bucket/key prefix")
    return out


def _check_compiled(artifacts) -> list[str]:
    p = artifacts.context.p
    region, account = p.aws.region, p.aws.account_id
    problems = []
    for role, policy in artifacts.policies.items():
        doc = policy.document()
        problems += [f"{role}: {x}" for x in _wildcard_problems(doc, region, account)]
        chars = len(json.dumps(doc, separators=(",", ":")))
        if chars > 10_240:
            problems.append(f"{role}: policy of {chars} characters")
    template = json.loads(artifacts.template_json)
    for lid, res in template["Resources"].items():
        docs = [res["Properties"].get("PolicyDocument")] + [x["PolicyDocument"] for x in res["Properties"].get("Policies", [])]
        for doc in filter(None, docs):
            if res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Role"):
                problems += [f"template {lid}: {x}" for x in _wildcard_problems(_resolve_sub(doc, region, account),
                                                                                  region, account)
                             if "no ARN" not in x]
    for st_ in artifacts.statements:
        text = st_.text("r" * 80)
        try:
            parsed = sqlglot.parse(text, read="athena")
        except sqlglot.errors.ParseError as e:
            problems.append(f"sql/{st_.name}.sql does not parse: {str(e)[:200]}")
            continue
        if len([x for x in parsed if x is not None]) != 1:
            problems.append(f"sql/{st_.name}.sql is not one statement")
        if len(one_line(text).encode()) > 262_144:
            problems.append(f"sql/{st_.name}.sql over Athena's query limit")
    labelled = {f'Field "Label" not allowed in State Machine.States.{n}' for n, s in artifacts.definition["States"].items()
                if s["Type"] == "Map"}
    problems += [f"statelint: {e}" for e in Linter.validate(artifacts.definition) if e not in labelled]
    if len(render(artifacts.definition).encode()) > 1_048_576:
        problems.append("definition over 1 MB")
    if len(artifacts.template_json.encode()) > 1_000_000 or len(template["Resources"]) > 500:
        problems.append("template over CloudFormation's limits")
    return problems


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_any_accepted_spec_compiles_to_no_wildcard_within_limits(tmp_path_factory, mutations):
    data = _base()
    for path, value in mutations:
        _set(data, path, value)
    path = tmp_path_factory.mktemp("spec") / "p.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    try:
        artifacts = compile_file(path, ENV)
    except SpecError as e:
        assert e.problems, str(e)
        for problem in e.problems:
            assert problem.line >= 1 and problem.col >= 1, f"not located: {problem} (mutations {mutations!r})"
            assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", str(problem)), str(problem)
            assert "\n" not in str(problem)
        return
    assert _check_compiled(artifacts) == [], mutations


@pytest.mark.parametrize("doc,expected", [
    ({"Statement": [{"Sid": "S3", "Resource": "arn:aws:s3:::bk1/p/*"}]}, []),
    ({"Statement": [{"Sid": "S3", "Resource": "arn:aws:s3:::*/*"}]}, ["S3: wildcard in 'arn:aws:s3:::*/*'",
                                                                      "S3: S3 resource 'arn:aws:s3:::*/*' names no "
                                                                      "bucket/key prefix"]),
    ({"Statement": [{"Sid": "S3", "Resource": "arn:aws:s3:::bk1/../*"}]}, ["S3: S3 resource 'arn:aws:s3:::bk1/../*' "
                                                                          "names no bucket/key prefix"]),
    ({"Statement": [{"Sid": "A", "Resource": "arn:aws:athena:us-east-1:123456789012:workgroup/*"}]}, []),
    ({"Statement": [{"Sid": "A", "Resource": "arn:aws:athena:us-east-1:123456789012:workgroup/a*b"}]},
     ["A: wildcard in 'arn:aws:athena:us-east-1:123456789012:workgroup/a*b'"]),
    ({"Statement": [{"Sid": "L", "Resource": "arn:aws:s3:::bk1/p/*",
                     "Condition": {"StringLike": {"s3:prefix": ["p?/*"]}}}]}, ["L: wildcard in 'p?/*'"]),
    ({"Statement": [{"Sid": "XrayAwsRequiresWildcard", "Resource": "*"}]}, []),
    ({"Statement": [{"Sid": "E", "Resource": "arn:aws:ecs:eu-west-1:123456789012:cluster/c"}]},
     ["E: 'arn:aws:ecs:eu-west-1:123456789012:cluster/c' is not in the spec's partition, region and account"]),
])
def test_the_property_sees_a_widened_grant(doc, expected):
    """The check itself: it flags what the issue found (s3:::*/*, a '..' key) and passes the legit forms."""
    assert _wildcard_problems(doc, "us-east-1", "123456789012") == expected
