"""`stepkit plan`: what a run will cost and how long it will take on AWS; `--optimize` the
cheapest layout that meets a deadline. `stepkit cost`: what a run did cost, beside the plan."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click

from stepkit.commands.options import _variables, env_file_option, var_option
from stepkit.errors import StepkitError


def parse_duration(text: str) -> float:
    """`20m`, `1h30m`, `90s`, `1.5h` -> seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text.strip().lower()):
        raise StepkitError(f"--deadline {text!r}: expected a duration like 20m, 1h30m or 90s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _load(pipeline: str, var: tuple[str, ...], env_file: str | None):
    from stepkit.compiler.build import build
    from stepkit.ir.context import Context
    from stepkit.compiler.load import load_pipeline

    variables = _variables(var, env_file)
    p, positions = load_pipeline(pipeline, variables)
    artifacts = build(Context(p, Path(pipeline)), positions, check_sql=False)
    return p, positions, artifacts


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--rows", type=click.IntRange(1), default=None, help="Source rows (default: source.rows in the spec).")
@click.option("--source-bytes", type=click.IntRange(1), default=None,
              help="Size of the raw source in bytes (default: rows x json_bytes_per_row, or the S3 listing with --aws).")
@click.option("--from-run", default=None, metavar="RUN",
              help="A local run (folder or id under --workdir): price tasks at its measured rows/s per core.")
@click.option("--workdir", default=".work", show_default=True, help="Where --from-run finds run ids.")
@click.option("--aws", "use_aws", is_flag=True,
              help="Read the account's Fargate vCPU quota, the subnets' free addresses and the source's size.")
@click.option("--vcpu-quota", type=click.FloatRange(0, min_open=True), default=None,
              help="The account's Fargate On-Demand vCPU quota (default: 6, AWS's default for a new account).")
@click.option("--runs-per-month", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Runs a month when the schedule is disabled (runs on demand).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a coefficient (repeatable).")
@click.option("--optimize", is_flag=True, help="Search for the cheapest layout that meets --deadline.")
@click.option("--deadline", default="20m", show_default=True, help="Wall-time limit for --optimize.")
@click.option("--write", is_flag=True, help="With --optimize: apply the proposed layout to PIPELINE.")
@click.option("--brief", is_flag=True, help="Leave out what each figure rests on.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@var_option
@env_file_option
def plan(pipeline: str, rows: int | None, source_bytes: int | None, from_run: str | None, workdir: str,
         use_aws: bool, vcpu_quota: float | None, runs_per_month: float, sets: tuple[str, ...], optimize: bool,
         deadline: str, write: bool, brief: bool, as_json: bool, var: tuple[str, ...], env_file: str | None) -> None:
    """Expected wall time and cost of a run of PIPELINE on AWS, per stage, and what each figure rests on.

    Exits 1 when a check fails: a batch or the training past its timeout, a task short of memory,
    a run or a month over cost_alarm.threshold_usd, fan-out vCPU over the quota, a subnet too small."""
    from stepkit.plan import checks, inputs as inputs_mod, render, throughput
    from stepkit.plan.coefficients import DEFAULT, parse_sets
    from stepkit.plan.model import Model

    if write and not optimize:
        raise StepkitError("--write goes with --optimize")
    deadline_s = parse_duration(deadline)
    p, positions, artifacts = _load(pipeline, var, env_file)
    coef = DEFAULT.with_values(parse_sets(sets), "--set") if sets else DEFAULT
    session = None
    if use_aws:
        from stepkit.aws.session import Session

        session = Session(region=p.aws.region)
    run = throughput.run_dir(from_run, workdir) if from_run else None
    inp = inputs_mod.build(p, rows, source_bytes, run, vcpu_quota, session, coef)
    model = Model(artifacts, inp, coef)
    result = model.evaluate()
    proposal = None
    if optimize:
        proposal = _optimize(p, pipeline, positions, inp, coef, deadline_s, runs_per_month, model)
    chosen = proposal.plan if proposal and proposal.plan else result
    month = checks.month(chosen, p, runs_per_month)
    problems = [str(checks.locate(pipeline, positions, f)) for f in checks.findings(chosen, p, runs_per_month)]
    if as_json:
        out = render.as_json(result, checks.month(result, p, runs_per_month),
                             [] if proposal else problems)
        if proposal is not None:
            out["optimized"] = _proposal_json(proposal, pipeline, positions, p, runs_per_month, problems, deadline_s)
        click.echo(json.dumps(out, indent=2))
    else:
        for line in render.text(result, checks.month(result, p, runs_per_month), verbose=not brief and not optimize):
            click.echo(line)
        if proposal is not None:
            _print_proposal(proposal, result, pipeline, positions, p, month, deadline_s, write)
    for line in problems:
        click.echo(line, err=True)
    if problems or (proposal is not None and proposal.plan is None):
        raise click.exceptions.Exit(1)


def _optimize(p, pipeline, positions, inp, coef, deadline_s, runs_per_month, model):
    from stepkit.compiler.build import build
    from stepkit.ir.context import Context
    from stepkit.plan import checks, edit, optimize
    from stepkit.plan.model import Model

    def compile_layout(layout):
        ctx = Context(edit.apply(p, layout), Path(pipeline))
        return Model(build(ctx, positions, check_sql=False), inp, coef)

    def acceptable(plan) -> bool:
        return not checks.findings(plan, p, runs_per_month)

    return optimize.search(p, optimize.Shapes(compile_layout), deadline_s, acceptable=acceptable)


def _describe(plan) -> str:
    lay = plan.layout
    sizes = ", ".join(f"{k} {c:g} vCPU / {m:g} GB" for k, c, m in lay.tasks)
    return f"{lay.batches} batches, {lay.max_concurrency} at once, {sizes}"


def _print_proposal(proposal, current, pipeline, positions, p, month, deadline_s, write) -> None:
    from stepkit.plan import edit, render

    click.echo("")
    if proposal.plan is None:
        fast = proposal.fastest
        click.echo(f"--optimize: {proposal.reason} ({render.minutes(deadline_s)}; {proposal.candidates} layouts "
                   "searched)" + (f"; the fastest: {render.minutes(fast.seconds)}, ${fast.usd:,.2f} ({_describe(fast)})"
                                  if fast else ""))
        return
    best = proposal.plan
    click.echo(f"optimized for a {render.minutes(deadline_s)} deadline ({proposal.candidates} layouts searched): "
               f"{render.minutes(best.seconds)} and ${best.usd:,.2f} a run (now {render.minutes(current.seconds)} and "
               f"${current.usd:,.2f}); {_describe(best)}")
    for line in render.text(best, month, verbose=False):
        click.echo(f"  {line}")
    text = edit.diff(Path(pipeline), positions, p, best.layout)
    if not text:
        click.echo("the file's layout is already the cheapest that meets the deadline")
        return
    click.echo(text, nl=False)
    if write:
        from stepkit.local.runs import write_atomic

        write_atomic(Path(pipeline), edit.edited(Path(pipeline), positions, p, best.layout))
        click.echo(f"wrote {pipeline}")


def _proposal_json(proposal, pipeline, positions, p, runs_per_month, problems, deadline_s) -> dict:
    from stepkit.plan import checks, edit, render

    if proposal.plan is None:
        return {"deadline_s": deadline_s, "found": False, "reason": proposal.reason,
                "fastest": render.as_json(proposal.fastest, checks.month(proposal.fastest, p, runs_per_month), [])
                if proposal.fastest else None}
    best = proposal.plan
    out = render.as_json(best, checks.month(best, p, runs_per_month), problems)
    out.update({"deadline_s": deadline_s, "found": True, "candidates": proposal.candidates,
                "diff": edit.diff(Path(pipeline), positions, p, best.layout)})
    return out


@click.command()
@click.argument("run")
@click.option("--plan", "pipeline_file", type=click.Path(dir_okay=False), default=None,
              help="The pipeline file: print the plan's figures beside the measured ones.")
@click.option("--rows", type=click.IntRange(1), default=None, help="With --plan: the run's source rows.")
@click.option("--source-bytes", type=click.IntRange(1), default=None, help="With --plan: the source's size.")
@click.option("--workdir", default=".work", show_default=True, help="Where local run ids are.")
@click.option("--region", default=None, help="AWS region (default: the --plan file's, or AWS_REGION).")
@click.option("--pipeline", "-p", "pipeline_name", default=None, metavar="NAME",
              help="Which deployed pipeline, when the region has several (its name).")
@var_option
@env_file_option
def cost(run: str, pipeline_file: str | None, rows: int | None, source_bytes: int | None, workdir: str,
         region: str | None, pipeline_name: str | None, var: tuple[str, ...], env_file: str | None) -> None:
    """What RUN cost: Athena bytes scanned per query, Fargate task-seconds, transitions (an AWS
    execution, beside the plan with --plan); or the rows/s per core a local run measured."""
    from stepkit.plan import throughput

    try:
        local = throughput.run_dir(run, workdir)
    except StepkitError:
        local = None
    if local is not None:
        for line in _local_cost(local):
            click.echo(line)
        return
    _aws_cost(run, pipeline_file, rows, source_bytes, region, pipeline_name, var, env_file)


def _local_cost(path: Path) -> list[str]:
    from stepkit.local.runs import RunRecord
    from stepkit.plan import throughput

    record = RunRecord.load(path)
    # The worker config the run's tasks read (its `outputs.config`; runs/<run>/config.json before).
    config = Path(record.outputs.get("config") or path / "config.json")
    try:
        stages = json.loads(config.read_text())["pipeline"]["stages"]
    except (OSError, ValueError, KeyError) as e:
        raise StepkitError(f"{config}: cannot read the run's pipeline ({e})") from None
    task_of = {s["name"]: (s["type"], s["task"]) for s in stages if s.get("type") in ("fan_out", "fargate_task")}
    lines = [f"local run {record.run_id}: {record.status}, {record.cores or '?'} cores; measured throughput "
             f"(stepkit plan --from-run {path} prices Fargate tasks at these, per vCPU):"]
    for m in throughput.measure(path, task_of):
        if not m.cores:
            lines.append(f"  {m.stage} ({m.task}): {m.how}")
            continue
        coef = "prediction_rows_per_s_per_vcpu" if task_of[m.stage][0] == "fan_out" else "training_rows_per_s_per_vcpu"
        lines.append(f"  {m.stage} ({m.task}): {m.how} = {m.rows_per_s_per_core:,.0f} rows/s per core ({coef})")
    return lines


def _aws_cost(run, pipeline_file, rows, source_bytes, region, pipeline_name, var, env_file) -> None:
    from stepkit.aws import ops
    from stepkit.aws.session import Session
    from stepkit.plan import cost as cost_mod
    from stepkit.plan import inputs as inputs_mod
    from stepkit.plan.model import Model
    from stepkit.plan.prices import for_region

    plan_ = prices = None
    if pipeline_file:
        p, _, artifacts = _load(pipeline_file, var, env_file)
        region = region or p.aws.region
        plan_ = Model(artifacts, inputs_mod.build(p, rows, source_bytes)).evaluate()
        prices = plan_.prices
        pipeline_name = pipeline_name or p.name
    session = Session(region=region)
    prices = prices or _maybe_prices(for_region, session.region)
    m = ops.machine(session, pipeline_name)
    arn = ops.execution_arn(m, run, session)
    definition = json.loads(session.client("stepfunctions").describe_state_machine(stateMachineArn=m.arn)["definition"])
    actuals = cost_mod.fetch(session, arn, definition, arn.rsplit(":", 1)[-1])
    for line in cost_mod.render(actuals, plan_, prices):
        click.echo(line)


def _maybe_prices(for_region, region):
    try:
        return for_region(region)
    except StepkitError:
        return None


COMMANDS = [plan, cost]
