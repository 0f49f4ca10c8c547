"""Pipeline -> plan: checked stages, their states wired into one state machine, one IAM policy
per role, the SQL, the AWS resources.

Blocks build typed pieces; this module checks and collects them, compiler/wiring.py joins the
states, and compiler/plan.py renders once, deterministically, so output can be committed and diffed.
"""
from __future__ import annotations

from pathlib import Path

from stepkit.compiler import flow, integrations, limits, source_safety, sqlcheck, targets, wiring
from stepkit.compiler.plan import Artifacts, Plan, StagePlan
from stepkit.ir import asl
from stepkit.ir.context import Context
from stepkit.ir.cfn import Resource
from stepkit.ir.iam import Policy, Statement
from stepkit.ir.names import CLEANUP_FUNCTION, ROLES
from stepkit.ir.sql import SqlStatement, TemplateError
from stepkit.errors import Problem, SpecError
from stepkit.compiler.load import load_pipeline
from stepkit.spec.loader import Positions, dotted
from stepkit.steps import cleanup as cleanup_block
from stepkit.steps.base import Finding

FAILED = wiring.FAILED
CLEANUP_ON_FAILURE = wiring.CLEANUP_ON_FAILURE


def _locate(ctx: Context, positions: Positions, index: int | None, f: Finding) -> Problem:
    loc = (("stages", index) if index is not None and not f.root else ()) + f.loc
    line, col = positions.find(loc)
    return Problem(str(ctx.file), line, col, dotted(loc), f.message if f.level == "error" else f"warning: {f.message}")


def _failure_path(ctx: Context) -> tuple[dict[str, asl.State], list[Statement], list[Resource], str]:
    """With `on_failure`: the states every failure goes to (clean up what the run made, then fail with
    the stage's error). Without it, none: the execution fails at the failed state, which a redrive runs again."""
    fail = {"Type": "Fail", "Comment": "Fails the execution with the failed stage's error and cause.",
            "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    of = ctx.p.on_failure
    if not (of.drop_tables or of.delete_data):
        return {}, [], [], FAILED
    block = cleanup_block.Cleanup(name=CLEANUP_ON_FAILURE, drop_tables=of.drop_tables, delete_data=of.delete_data,
                                  scope="run", comment="Drops what the failed run made; then the execution fails.")
    state = block.fragment(ctx).states[CLEANUP_ON_FAILURE]
    # Clean-up trouble must not hide the original error.
    state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": FAILED}]
    state["Next"] = FAILED
    return {CLEANUP_ON_FAILURE: state, FAILED: fail}, block.iam(ctx), block.resources(ctx), CLEANUP_ON_FAILURE


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
        # CheckOtherRuns: the executions of this machine running now (one run at a time).
        Statement.of(sm, "states:ListExecutions", ctx.names.state_machine_arn),
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
    errors += [_locate(ctx, positions, None, f) for f in source_safety.check(ctx)]
    errors += [_locate(ctx, positions, None, f) for f in targets.check(ctx)]
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
    for i, message in flow.problems([stage.flow(ctx) for stage in p.stages], [s.name for s in p.stages]):
        where = ("reads",) if getattr(p.stages[i], "reads", None) is not None else ("template",) \
            if hasattr(p.stages[i], "template") else ("type",)
        errors.append(_locate(ctx, positions, i, Finding("error", where, message)))
    if errors:
        raise SpecError(problems=errors)

    flows = [stage.flow(ctx) for stage in p.stages]
    for i, f in cleanup_block.protect_outputs(ctx, flows):
        errors.append(_locate(ctx, positions, i, f))
    if errors:
        raise SpecError(problems=errors)
    stage_states, prepare_iam, prepare_resources = [], [], []
    for stage, f in zip(p.stages, flows):
        keys = tuple(sorted(k for k in f.writes | f.defines if k in p.tables.names()))
        # A table an earlier stage declares (the predictions' external table) keeps its definition: this
        # stage only fills it.
        declared_before = {k for g in flows[:p.stages.index(stage)] for k in g.defines}
        prepare = cleanup_block.prepare_state(ctx, stage.name, keys, frozenset(keys) & declared_before) \
            if keys else None
        stage_states.append(wiring.StageStates(stage.name, stage.fragment(ctx), guard=not _state_only(f),
                                               prepare=prepare))
    if any(s.prepare is not None for s in stage_states):
        prepare_iam, prepare_resources = cleanup_block.statements(ctx), cleanup_block.resources(ctx)
    failure_states, failure_iam, failure_resources, on_error = _failure_path(ctx)
    try:
        start, wired = wiring.wire(stage_states, flow.structure(flows), ctx.names.state_machine_arn,
                                   (failure_states, on_error) if failure_states else None)
    except wiring.NameClash as e:  # two stages (or a stage and stepkit's own states) make one state name
        index = next((i for i, s in enumerate(p.stages) if s.name == e.stage), None)
        loc = ("name",) if index is not None else ("on_failure",) if e.stage is None else ("stages",)
        raise SpecError(problems=[_locate(ctx, positions, index, Finding("error", loc, str(e)))]) from None
    definition = {
        "Comment": f"{p.name}: {p.description}".strip().rstrip(":") + " (compiled by stepkit; do not edit)",
        "StartAt": start,
        "States": wired.states,
    }
    stage_of = dict(wired.stage_of)
    for stage_states_ in stage_states:  # a Map's per-item states belong to the Map's stage
        for name, state in stage_states_.fragment.states.items():
            processor = state.get("ItemProcessor") or state.get("Iterator") or {}
            for inner in processor.get("States", {}):
                if inner in stage_of or inner in wired.names:  # names are unique in the whole machine
                    e = wiring.clash(inner, stage_states_.name, stage_of.get(inner))
                    index = next((i for i, s in enumerate(p.stages) if s.name == e.stage), None)
                    raise SpecError(problems=[_locate(ctx, positions, index, Finding("error", ("name",), str(e)))])
                stage_of[inner] = stage_states_.name
    index_of = {stage.name: i for i, stage in enumerate(p.stages)}

    policies = {role: Policy(role) for role in ROLES}
    for st in [*_base_statements(ctx), *[s for stage in p.stages for s in stage.iam(ctx)], *failure_iam,
               *prepare_iam]:
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
        index = index_of.get(stage_of.get(issue.state, ""))  # None: stepkit's own or on_failure states
        loc = ("on_failure",) if index is None and issue.state in failure_states else ()
        errors.append(_locate(ctx, positions, index, Finding("error", loc, f"state {issue}")))
    if errors:
        raise SpecError(problems=errors)
    resources = [r for stage in p.stages for r in stage.resources(ctx)] + failure_resources + prepare_resources
    plans = []
    for i, (stage, f, ss) in enumerate(zip(p.stages, flows, stage_states)):
        names = [n for n in wired.stage_of if wired.stage_of[n] == stage.name]
        plans.append(StagePlan(stage, i, f, names, wiring.guard_name(stage.name) if ss.guard else ss.fragment.entry,
                               tuple(ss.fragment.exits), [st for st in statements if st.stage == stage.name],
                               stage.repeatable,
                               tuple(sorted(k for k in f.writes | f.defines if k in p.tables.names()))
                               if ss.prepare is not None else (), ss.guard))
    plan = Plan(ctx, definition, policies, statements, resources, warnings, plans, stage_of)
    errors += limits.check(plan, positions)  # AWS's size limits, measured on the rendered artifacts
    if errors:
        raise SpecError(problems=errors)
    return plan


def _state_only(f: flow.Flow) -> bool:
    """Writes only execution state (a batch id list): it runs every time, its output is not kept."""
    return bool(f.writes) and all(w.startswith("$") for w in f.writes) and not (f.barrier or f.defines)


def compile_file(path: str | Path, variables: dict[str, str] | None = None,
                 check_sql: "bool | sqlcheck.Checker" = True) -> Artifacts:
    pipeline, positions = load_pipeline(path, variables)
    ctx = Context(pipeline, Path(path))
    return build(ctx, positions, check_sql=check_sql)


__all__ = ["Artifacts", "build", "compile_file", "CLEANUP_FUNCTION"]
