"""Pipeline -> artifacts: the state machine, one IAM policy per role, the SQL files.

Blocks build typed pieces; this module wires them and renders once, deterministically,
so compiled output can be committed and diffed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from stepkit.compiler import asl, integrations, limits, sqlcheck
from stepkit.compiler.context import Context
from stepkit.compiler.iam import Policy, Statement
from stepkit.compiler.names import CLEANUP_FUNCTION, ROLES
from stepkit.compiler.sql import SqlStatement, TemplateError
from stepkit.errors import Problem, SpecError
from stepkit.spec.loader import Positions, dotted, load_pipeline
from stepkit.steps import cleanup as cleanup_block
from stepkit.steps.base import Finding

FAILED = "Failed"
CLEANUP_ON_FAILURE = "CleanupOnFailure"


@dataclass
class Artifacts:
    context: Context
    definition: dict[str, Any]
    policies: dict[str, Policy]
    statements: list[SqlStatement]
    warnings: list[Problem] = field(default_factory=list)

    @cached_property
    def template(self) -> dict[str, Any]:
        """The CloudFormation template (built once: the size checks and `files()` both read it)."""
        from stepkit.aws import template  # lazy: pure dicts, no boto3; keeps compile fast

        return template.build(self)

    @cached_property
    def template_json(self) -> str:
        from stepkit.aws import template

        return template.render(self.template)

    def files(self) -> dict[str, str]:
        """Relative path -> content, for `compile --out`."""
        out = {"statemachine.asl.json": asl.render(self.definition)}
        for role, policy in self.policies.items():
            out[f"iam/{role}.json"] = policy.render()
        for st in self.statements:
            out[f"sql/{st.name}.sql"] = st.sql
        out["template.json"] = self.template_json
        return dict(sorted(out.items()))

    def write(self, out_dir: Path) -> list[Path]:
        """Every file of `files()` under out_dir; returns their paths (unchanged ones included)."""
        written = []
        for rel, text in self.files().items():
            path = out_dir / rel
            data = text.encode("utf-8")
            written.append(path)
            # A file that already holds this content is left alone: its mtime stays (make, rsync),
            # and the rename below is the slowest step of a compile that changes nothing.
            if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temporary name and rename: an interrupted compile leaves no half file.
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return written


def _locate(ctx: Context, positions: Positions, index: int | None, f: Finding) -> Problem:
    loc = (("stages", index) if index is not None and not f.root else ()) + f.loc
    line, col = positions.find(loc)
    return Problem(str(ctx.file), line, col, dotted(loc), f.message if f.level == "error" else f"warning: {f.message}")


def _failure_path(ctx: Context) -> tuple[dict[str, asl.State], list[Statement], str]:
    """States every failure goes to: clean up what the run made, then fail with the stage's error."""
    fail = {"Type": "Fail", "Comment": "Fails the execution with the failed stage's error and cause.",
            "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    of = ctx.p.on_failure
    if not (of.drop_tables or of.delete_data):
        return {FAILED: fail}, [], FAILED
    block = cleanup_block.Cleanup(name=CLEANUP_ON_FAILURE, drop_tables=of.drop_tables, delete_data=of.delete_data,
                                  scope="run", comment="Drops what the failed run made; then the execution fails.")
    state = block.fragment(ctx).states[CLEANUP_ON_FAILURE]
    # Clean-up trouble must not hide the original error.
    state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": FAILED}]
    state["Next"] = FAILED
    return {CLEANUP_ON_FAILURE: state, FAILED: fail}, block.iam(ctx), CLEANUP_ON_FAILURE


def _base_statements(ctx: Context) -> list[Statement]:
    sm = "statemachine"
    return [
        Statement.of(sm, ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                          "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                          "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"], "*",
                     why="CloudWatch Logs vended log delivery: AWS requires '*' (docs: cw-logs)"),
        Statement.of(sm, ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                          "xray:GetSamplingTargets"], "*",
                     why="X-Ray tracing actions have no resource types: AWS requires '*'"),
    ]


def build(ctx: Context, positions: Positions | None = None,
          check_sql: "bool | sqlcheck.Checker" = True) -> Artifacts:
    """Check, build and wire every stage. `check_sql`: parse every statement with sqlglot (True,
    in this process), not at all (False: `graph` only), or through a given (background) checker."""
    p = ctx.p
    positions = positions or Positions()
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for i, stage in enumerate(p.stages):
        for f in stage.check(ctx):
            (errors if f.level == "error" else warnings).append(_locate(ctx, positions, i, f))
    # The failure path's table keys: checked like a cleanup stage's, located under on_failure.
    for f in cleanup_block.Cleanup(name=CLEANUP_ON_FAILURE, **p.on_failure.model_dump()).check(ctx):
        if p.on_failure.drop_tables or p.on_failure.delete_data:
            errors.append(_locate(ctx, positions, None, Finding(f.level, ("on_failure", *f.loc), f.message)))
    if errors:
        raise SpecError(problems=errors)

    checker = sqlcheck.InProcess() if check_sql is True else check_sql or None
    statements: list[SqlStatement] = []
    owners: list[int] = []
    for i, stage in enumerate(p.stages):
        try:
            rendered = stage.sql(ctx)
        except TemplateError as e:
            errors.append(_locate(ctx, positions, i, Finding("error", ("template",), e.detail)))
            continue
        for st in rendered:
            if checker is not None:
                # Submitted now, verdicts read at the end: a background checker parses meanwhile.
                checker.submit(st.text(sqlcheck.SAMPLE_RUN_ID))
            statements.append(st)
            owners.append(i)

    if errors:
        raise SpecError(problems=errors)

    failure_states, failure_iam, on_error = _failure_path(ctx)
    states: dict[str, asl.State] = {}
    stage_of: dict[str, int] = {}
    fragments = [stage.fragment(ctx) for stage in p.stages]
    for i, (frag, nxt) in enumerate(zip(fragments, fragments[1:] + [None])):
        for name in frag.exits:
            state = frag.states[name]
            state.pop("Next", None)
            if nxt is None:
                state["End"] = True
            else:
                state["Next"] = nxt.entry
        for name, state in frag.states.items():
            if state["Type"] in ("Task", "Map", "Parallel"):
                state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": on_error}]
            if name in states:
                raise SpecError(problems=[_locate(ctx, positions, i, Finding(
                    "error", ("name",), f"two stages make a state named {name!r}; rename one"))])
            states[name] = state
            stage_of[name] = i
    for name in failure_states.keys() & states.keys():  # a stage named Failed would be replaced silently
        raise SpecError(problems=[_locate(ctx, positions, stage_of[name], Finding(
            "error", ("name",), f"{name!r} names the state every failure goes to; rename the stage"))])
    states.update(failure_states)

    definition = {
        "Comment": f"{p.name}: {p.description}".strip().rstrip(":") + " (compiled by stepkit; do not edit)",
        "StartAt": fragments[0].entry,
        "States": states,
    }

    policies = {role: Policy(role) for role in ROLES}
    for st in [*_base_statements(ctx), *[s for stage in p.stages for s in stage.iam(ctx)], *failure_iam]:
        policies[st.role].statements.append(st)
    if not policies["lambda"].statements:
        # Nothing invokes stepkit's Lambda: still let the deployed function write its logs.
        policies["lambda"].statements += [s for s in cleanup_block.statements(ctx) if s.role == "lambda" and "logs" in s.actions[0]]

    if checker is not None:
        for st, i, why in zip(statements, owners, checker.results()):
            if why:
                # The SQL comes from the stage's template: point there.
                errors.append(_locate(ctx, positions, i, Finding("error", ("template",), f"sql/{st.name}.sql {why}")))
    # No validator reads integration ARNs or their Parameters: stepkit's own allow-list does.
    for issue in integrations.check(definition):
        index = stage_of.get(issue.state)  # None: the failure path, made from `on_failure`
        loc = () if index is not None else ("on_failure",)
        errors.append(_locate(ctx, positions, index, Finding("error", loc, f"state {issue}")))
    artifacts = Artifacts(ctx, definition, policies, statements, warnings)
    errors += limits.check(artifacts, positions)  # AWS's size limits, measured on the rendered artifacts
    if errors:
        raise SpecError(problems=errors)
    return artifacts


def compile_file(path: str | Path, variables: dict[str, str] | None = None,
                 check_sql: "bool | sqlcheck.Checker" = True) -> Artifacts:
    pipeline, positions = load_pipeline(path, variables)
    ctx = Context(pipeline, Path(path))
    return build(ctx, positions, check_sql=check_sql)


def uses_cleanup_function(ctx: Context) -> bool:
    of = ctx.p.on_failure
    return bool(of.drop_tables or of.delete_data) or any(s.type == "cleanup" for s in ctx.p.stages)


__all__ = ["Artifacts", "build", "compile_file", "CLEANUP_FUNCTION", "uses_cleanup_function"]
