"""Compiled output of every pipeline in pipelines/ passes the real validators.

ASL: statelint (PyPI) and asl-validator (npm). IAM: parliament, plus the project's own rules
that parliament does not check. SQL: sqlglot reads every statement as Athena SQL, and each
CTAS carries the properties its stage asks for. Each validator also gets a broken input, so a
validator that silently stopped running would fail here too.
"""
from __future__ import annotations

import copy
import json
import subprocess
from functools import lru_cache
from pathlib import Path

import parliament
import pytest
import sqlglot
from sqlglot import exp
from statelint.linter import Linter

from stepkit.cli import _variables
from stepkit.compiler.build import Artifacts, compile_file

ROOT = Path(__file__).resolve().parents[1]
ENV = ROOT / "pipelines" / "example.env"
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
IDS = [p.stem for p in PIPELINES]
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
ROLES = ("statemachine", "lambda", "task", "task_execution")


@lru_cache(maxsize=None)
def compiled(path: Path) -> Artifacts:
    return compile_file(path, _variables((), str(ENV)))


def test_there_is_more_than_one_pipeline():
    assert {"predict_age", "predict_income"} <= set(IDS)


# --- ASL ---------------------------------------------------------------------------------

def statelint_errors(definition: dict) -> list[str]:
    errors = Linter.validate(definition)
    # statelint 3.1 predates Distributed Map and refuses its `Label` field; AWS and
    # asl-validator accept it. Drop exactly that message, for exactly the Distributed Maps.
    labelled = {n for n, s in definition["States"].items()
                if s["Type"] == "Map" and s["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"}
    false_errors = {f'Field "Label" not allowed in State Machine.States.{n}' for n in labelled}
    return [e for e in errors if e not in false_errors]


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_statelint(path):
    assert statelint_errors(compiled(path).definition) == []


def asl_validator(definition: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    file = tmp_path / "statemachine.asl.json"
    file.write_text(json.dumps(definition))
    assert ASL_VALIDATOR.exists(), "asl-validator is missing: run `make setup` (npm install)"
    return subprocess.run([str(ASL_VALIDATOR), "--json-path", str(file)], capture_output=True, text=True)


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_asl_validator(path, tmp_path):
    result = asl_validator(compiled(path).definition, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _break_next(definition: dict) -> dict:
    broken = copy.deepcopy(definition)
    first = broken["States"][broken["StartAt"]]
    first["Next"] = "NoSuchState"
    return broken


def _string_concurrency(definition: dict) -> dict:
    broken = copy.deepcopy(definition)
    for state in broken["States"].values():
        if state["Type"] == "Map":
            state["MaxConcurrency"] = str(state["MaxConcurrency"])
    return broken


@pytest.mark.parametrize("breaker", [_break_next, _string_concurrency])
def test_validators_catch_a_broken_definition(breaker, tmp_path):
    broken = breaker(compiled(ROOT / "pipelines" / "predict_age.yaml").definition)
    assert statelint_errors(broken) != []
    assert asl_validator(broken, tmp_path).returncode != 0


# --- IAM: parliament ---------------------------------------------------------------------

SEVERE = {"MEDIUM", "HIGH", "CRITICAL"}
# parliament wants states:DescribeExecution to also match the `express:` resource type, though
# the machine is STANDARD and has no express executions. Granting on an express ARN would add
# a permission only to please the linter, so this one exact finding is accepted instead.
# Likewise states:ListExecutions on the machine: parliament lists both its resource types (state
# machine, Map Run) as required, though one is named per call; stepkit lists by state machine.
ACCEPTED = [("statemachine", "RESOURCE_MISMATCH",
             [{"action": "states:DescribeExecution", "required_format": "arn:*:states:*:*:express:*:*:*"}]),
            ("statemachine", "RESOURCE_MISMATCH",
             [{"action": "states:ListExecutions", "required_format": "arn:*:states:*:*:mapRun:*/*:*"}])]


def severe_findings(role: str, policy_json: str) -> list[tuple]:
    findings = [parliament.enhance_finding(f) for f in parliament.analyze_policy_string(policy_json).findings]
    out = [(role, f.issue, f.detail) for f in findings if f.severity in SEVERE]
    return [f for f in out if f not in ACCEPTED]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_parliament(path, role):
    assert severe_findings(role, compiled(path).policies[role].render()) == []


def test_parliament_catches_a_bad_policy():
    # An object action on a bucket ARN: RESOURCE_MISMATCH, MEDIUM.
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::bucket"}]}
    assert [f[1] for f in severe_findings("task", json.dumps(bad))] == ["RESOURCE_MISMATCH"]


# --- IAM: the project's rules ------------------------------------------------------------

@lru_cache(maxsize=1)
def access_levels() -> dict[str, str]:
    """'service:Action' (lower case) -> AWS access level, from parliament's IAM database."""
    data = json.loads((Path(parliament.__file__).parent / "iam_definition.json").read_text())
    return {f"{s['prefix']}:{p['privilege']}".lower(): p["access_level"] for s in data for p in s["privileges"]}


def statements(artifacts: Artifacts, role: str) -> list[dict]:
    return artifacts.policies[role].document()["Statement"]


def resources(st: dict) -> list[str]:
    return st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]


def granted(artifacts: Artifacts, role: str, action: str) -> list[str]:
    return sorted(r for st in statements(artifacts, role) if action in st["Action"] for r in resources(st))


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_no_unexplained_wildcard(path):
    artifacts = compiled(path)
    for role in ROLES:
        reasons = artifacts.policies[role].wildcard_reasons()
        for st in statements(artifacts, role):
            if "*" not in resources(st):
                continue
            for action in st["Action"]:
                level = access_levels()[action.lower()]
                assert reasons.get(action), f"{role}: {action} on '*' without a reason"
                if level in ("Write", "Permissions management", "Tagging"):
                    # AWS's reason must name the requirement, not just exist.
                    assert "AWS requires '*'" in reasons[action] or "no resource type" in reasons[action], action


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_every_action_is_known_to_aws(path):
    artifacts = compiled(path)
    unknown = [a for role in ROLES for st in statements(artifacts, role) for a in st["Action"]
               if a.lower() not in access_levels()]
    assert unknown == []


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_eventbridge_rule_exactly(path):
    a = compiled(path)
    n = a.context.names
    rule = f"arn:aws:events:{n.aws.region}:{n.aws.account_id}:rule/StepFunctionsGetEventsForECSTaskRule"
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        assert granted(a, "statemachine", action) == [rule]
    events = [act for role in ROLES for st in statements(a, role) for act in st["Action"] if act.startswith("events:")]
    assert sorted(set(events)) == ["events:DescribeRule", "events:PutRule", "events:PutTargets"]


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_pass_role_only_the_two_task_roles(path):
    a = compiled(path)
    n = a.context.names
    assert granted(a, "statemachine", "iam:PassRole") == sorted([n.role_arn("task"), n.role_arn("task_execution")])
    for role in ("lambda", "task", "task_execution"):
        assert granted(a, role, "iam:PassRole") == []
    (st,) = [s for s in statements(a, "statemachine") if "iam:PassRole" in s["Action"]]
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def _s3_scope(a: Artifacts) -> tuple[set[str], list[str], list[str]]:
    aws, src = a.context.p.aws, a.context.p.source.location.removeprefix("s3://")
    src_bucket = src.split("/")[0]
    buckets = {f"arn:aws:s3:::{aws.bucket}", f"arn:aws:s3:::{src_bucket}"}
    objects = [f"arn:aws:s3:::{aws.bucket}/{aws.prefix}/", f"arn:aws:s3:::{src}"]
    prefixes = [f"{aws.prefix}/", src.split("/", 1)[1]]  # each ends in "/"
    # An existing_model stage reads (only) the runs of the pipeline that trained the model.
    for s in a.context.p.stages:
        if getattr(s, "from_prefix", None):
            objects.append(f"arn:aws:s3:::{aws.bucket}/{s.from_prefix}/runs/")
            prefixes.append(f"{s.from_prefix}/runs/")
    return buckets, objects, prefixes


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_s3_only_under_prefix_or_source(path):
    a = compiled(path)
    buckets, objects, prefixes = _s3_scope(a)
    for role in ROLES:
        for st in statements(a, role):
            s3 = [act for act in st["Action"] if act.startswith("s3:")]
            if not s3:
                continue
            for r in resources(st):
                if r in buckets:
                    if "s3:ListBucket" in s3:
                        listed = st["Condition"]["StringLike"]["s3:prefix"]
                        listed = listed if isinstance(listed, list) else [listed]
                        inside = [p for p in listed if any(p.startswith(q) or p == q[:-1] for q in prefixes)]
                        assert inside == listed, (role, listed)
                    continue
                assert any(r.startswith(o) for o in objects), (role, r)
                if any(r.startswith(o) for o in objects[1:]) and not r.startswith(objects[0]):
                    # The source (and another pipeline's runs) are read-only.
                    assert s3 == ["s3:GetObject"], (role, s3)


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_glue_only_the_pipelines_databases(path):
    a = compiled(path)
    p, n = a.context.p, a.context.names
    own, src = p.aws.database, p.source.database or p.aws.database
    # `default`: Athena's documented lookup of the region's default database (read only).
    allowed_read = set(n.glue_arns(own)) | set(n.glue_arns(src)) | {n.arn("glue", "database/default")}
    allowed_write = set(n.glue_arns(own))
    seen = set()
    for role in ROLES:
        for st in statements(a, role):
            glue = [act for act in st["Action"] if act.startswith("glue:")]
            if not glue:
                continue
            writes = [g for g in glue if access_levels()[g.lower()] != "Read"]
            for r in resources(st):
                seen.add(r)
                assert r in (allowed_write if writes else allowed_read), (role, r, writes)
    assert f"arn:aws:glue:{p.aws.region}:{p.aws.account_id}:table/{own}/*" in seen
    assert n.arn("glue", "database/default") in seen


# --- SQL -----------------------------------------------------------------------------------

def parse(sql: str) -> exp.Expression:
    trees = [t for t in sqlglot.parse(sql.replace("${run_id}", "run_1"), read="athena") if t is not None]
    assert len(trees) == 1
    return trees[0]


def ctas_properties(create: exp.Create) -> dict:
    names = {exp.FileFormatProperty: "format", exp.PartitionedByProperty: "partitioned_by"}
    out = {}
    for prop in create.args["properties"].expressions:
        key = names.get(type(prop)) or prop.name
        value = prop.args.get("value") or prop.this
        if isinstance(value, (exp.Array, exp.Tuple, exp.Schema)):
            out[key] = [v.name for v in value.expressions]
        elif isinstance(value, exp.Literal) and not value.is_string:
            out[key] = int(value.this)
        else:
            out[key] = value.name
    return out


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_every_statement_parses_as_athena_sql(path):
    a = compiled(path)
    kinds = {"ctas": exp.Create, "ddl": exp.Create, "insert": exp.Insert, "query": exp.Expression}
    for st in a.statements:
        assert isinstance(parse(st.sql), kinds[st.kind]), st.name


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_ctas_properties_are_what_the_spec_says(path):
    a = compiled(path)
    ctx = a.context
    stages = {s.name: s for s in ctx.p.stages}
    checked = 0
    for st in a.statements:
        if st.kind != "ctas":
            continue
        stage = stages[st.stage]
        tree = parse(st.sql)
        expected = {
            "format": stage.format.upper(),
            "write_compression": stage.compression.upper(),
            "external_location": ctx.names.table_location(stage.table, "run_1"),
        }
        if stage.partitioned_by:
            expected["partitioned_by"] = list(stage.partitioned_by)
        if stage.bucketed_by:
            expected["bucketed_by"] = list(stage.bucketed_by)
            expected["bucket_count"] = stage.bucket_count
        assert ctas_properties(tree) == expected, st.name
        assert tree.this.sql("athena") == ctx.table(stage.table)
        # Athena needs partition columns last in the SELECT list, in order.
        if stage.partitioned_by:
            selected = [e.alias_or_name for e in tree.expression.selects]
            assert selected[-len(stage.partitioned_by):] == list(stage.partitioned_by), st.name
        checked += 1
    assert checked == sum(1 for s in ctx.p.stages if s.type == "athena_ctas")


@pytest.mark.parametrize("path", PIPELINES, ids=IDS)
def test_chunked_inserts_cover_every_partition_once(path):
    """A table over 100 partitions is one CTAS plus INSERTs of <= 100 partitions each, together 0..N-1."""
    a = compiled(path)
    by_stage: dict[str, list] = {}
    for st in a.statements:
        by_stage.setdefault(st.stage, []).append(st)
    stages = {s.name: s for s in a.context.p.stages}
    for name, sts in by_stage.items():
        stage = stages[name]
        if stage.type != "athena_ctas" or len(sts) == 1:
            continue
        parts = stage.partition_count(a.context)
        assert [s.kind for s in sts] == ["ctas"] + ["insert"] * (len(sts) - 1)
        assert len(sts) == -(-parts // 100)
        for st in sts[1:]:
            assert parse(st.sql).this.sql("athena") == a.context.table(stage.table)
