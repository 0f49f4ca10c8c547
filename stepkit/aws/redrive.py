"""Continuing a deployed run that did not succeed: `stepkit redrive` and `stepkit run --from`.

A run is the executions that share its run id (the first one's name; later ones are named
`<run>-c<N>`, a long run id cut short with a digest of it, and started with `{"run": {"id": RUN}, ...}`).
What to do is decided from the definition the failed execution ran and the run's histories alone
(compiler/recovery.py, the same decision a local `--resume` takes):

- **redrive** (RedriveExecution): every unfinished state may run again as it is. Same execution,
  same definition version; finished states and a Map's finished items are not run again.
- **continue** (StartExecution of a new execution of the same run, on the alias runs start): an
  Athena write was cut short, or the failure path ran. Stages the run finished are skipped; the
  others drop what they had written first. Also what happens when AWS will not redrive (14 days
  after the execution stopped, or past its event limit).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from stepkit.aws import lifecycle, versions
from stepkit.aws.ops import Machine, execution_arn, in_the_way, machine
from stepkit.aws.session import Session
from stepkit.compiler import recovery
from stepkit.errors import AwsError, StepkitError

REDRIVE_WINDOW = timedelta(days=14)  # RedriveExecution refuses executions stopped longer ago
NAME_LIMIT = 80  # StartExecution's name
KEPT = 64  # what a continuation's name keeps of a long run id (the rest: a digest and `-c<N>`)


@dataclass
class Run:
    """A run's executions (oldest first), with their histories, and the definition the last one ran."""

    id: str
    executions: list[dict[str, Any]]  # DescribeExecution of each
    histories: list[list[dict[str, Any]]]
    definition: dict[str, Any]
    # ListExecutions items of other runs started after the run's first execution
    others: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.executions[-1]


@dataclass(frozen=True)
class Plan:
    run: Run
    decision: recovery.Decision
    note: str = ""  # why a redrive became a continue


def unqualified(state_machine_arn: str) -> str:
    """The machine itself: an execution started on a version or alias may name it with its qualifier."""
    return ":".join(state_machine_arn.split(":")[:7])


def history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    return [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
            for e in page.get("events", [])]


def find_run(session: Session, m: Machine, execution: str | None) -> Run:
    """The run `execution` (a name or ARN; default: the latest) belongs to, with all its executions."""
    sfn = session.client("stepfunctions")
    arn = execution_arn(m, execution, session)
    desc = sfn.describe_execution(executionArn=arn)
    ran_on = unqualified(desc["stateMachineArn"])
    if ran_on != m.arn:  # an ARN given by hand: another pipeline's, or no stepkit machine's at all
        raise StepkitError(f"execution {desc['name']} is one of state machine {ran_on.rsplit(':', 1)[-1]}, not of "
                           f"{m.name}: pick its pipeline with --pipeline")
    given = history(sfn, arn)
    run_id = recovery.run_id(given, desc["name"])
    listed, others = [], []
    # Newest first (closed executions by their stopDate); the run's first execution is named the run.
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=m.arn):
        for e in page.get("executions", []):
            mine = e["name"] == run_id or e["name"].startswith(run_id[:KEPT])
            (listed if mine else others).append(e)
        if any(e["name"] == run_id for e in listed):
            break
    executions, histories = [], []
    for e in sorted(listed, key=lambda e: e["startDate"]):
        mine = e["executionArn"] == desc["executionArn"]
        events = given if mine else history(sfn, e["executionArn"])  # the one asked about is read already
        if recovery.run_id(events, e["name"]) == run_id:
            executions.append(desc if mine else sfn.describe_execution(executionArn=e["executionArn"]))
            histories.append(events)
        else:
            others.append(e)
    if not executions:  # the execution itself was not listed yet (ListExecutions is eventually consistent)
        executions, histories = [desc], [given]
    definition = sfn.describe_state_machine_for_execution(
        executionArn=executions[-1]["executionArn"])["definition"]
    first = executions[0]["startDate"]
    return Run(run_id, executions, histories, json.loads(definition), [e for e in others if e["startDate"] > first])


def later_run(session: Session, run: Run) -> str | None:
    """Why `run` may not go on, if a run started after it went past its start states: a new run's first
    clean-up drops every run's tables, and its own tables then hold their names (one table name for
    every run; each run's files under its own folder). None when no such run exists."""
    sfn = session.client("stepfunctions")
    for e in sorted(run.others, key=lambda e: e["startDate"]):
        events = history(sfn, e["executionArn"])
        if recovery.past_the_start(events):
            other = recovery.run_id(events, e["name"])
            return (f"run {run.id} cannot go on: run {other} started after it (execution {e['name']}) and its first "
                    f"clean-up dropped the tables of the runs before it; go on with the latest run "
                    f"(`stepkit redrive`), or start a new one")
    return None


def files_gone(session: Session, run: Run, now: datetime) -> str | None:
    """Why the files of the stages `run` finished may be gone, if they may: the bucket's lifecycle rules
    (`retention`, written by deploy) expire table files and models some days after they were written, and
    the run wrote them from its start on. None while every such rule lets them be."""
    age = now - run.executions[0]["startDate"]
    where = _root(run.definition)
    if where is None or age < timedelta(days=1):  # S3 expires nothing sooner
        return None
    bucket, root = where
    rule = lifecycle.expiry(session.client("s3"), bucket, [f"{root}tables/", f"{root}runs/"])
    if rule is None or age <= timedelta(days=rule[0]):
        return None
    days, prefix = rule
    return (f"run {run.id} started {age.days} days ago, and the bucket's lifecycle rule for s3://{bucket}/{prefix} "
            f"expires files {days} days after they were written: the tables and models of the stages it finished "
            "may be gone; start a new run")


def _root(definition: dict[str, Any]) -> tuple[str, str] | None:
    """(bucket, key prefix ending in '/') of the pipeline's files, read from a cleanup state's table locations
    (`s3://BUCKET/PREFIX/tables/NAME/`)."""
    from stepkit.ir.asl import every_state

    for _, _, state in every_state(definition):
        payload = (state.get("Parameters") or {}).get("Payload") or {}
        for t in payload.get("tables", []) if isinstance(payload, dict) else []:
            location = str(t.get("location", "")) if isinstance(t, dict) else ""
            if location.startswith("s3://") and "/tables/" in location:
                bucket, _, key = location[len("s3://"):].partition("/")
                return bucket, key[: key.rindex("/tables/") + 1]
    return None


def plan(session: Session, execution: str | None = None, pipeline: str | None = None,
         now: datetime | None = None) -> Plan:
    m = machine(session, pipeline)
    sfn = session.client("stepfunctions")
    running = sfn.list_executions(stateMachineArn=m.arn, statusFilter="RUNNING").get("executions", [])
    if running:
        raise AwsError(in_the_way(running, m.name))
    run = find_run(session, m, execution)
    shape = recovery.Shape.of(run.definition)
    last = run.last
    if last["status"] == "SUCCEEDED":
        return Plan(run, recovery.Decision("done", f"run {run.id} succeeded (execution {last['name']})"))
    blocked = later_run(session, run)
    now = now or datetime.now(timezone.utc)
    blocked = blocked or files_gone(session, run, now)
    if blocked:
        raise StepkitError(blocked)
    decision = recovery.decide(shape, run.histories, run.id)
    if decision.kind == "new":
        raise StepkitError(f"run {run.id}: {decision.reason}")
    if decision.kind != "redrive":
        return Plan(run, decision)
    live = versions.live(sfn, m.arn)
    why = not_redriven(last, live.version_arn if live else None, now)
    if why:
        return Plan(run, recovery.Decision("continue", decision.reason,
                                           recovery.continue_input(shape, run.histories, run.id)), why)
    return Plan(run, decision)


def not_redriven(last: dict[str, Any], live_version: str | None, now: datetime) -> str:
    """Why the run goes on in a new execution although its unfinished states could run again ("": it
    need not): AWS will not redrive it, or a deploy since made another version live, and a redrive runs
    the definition the execution started with (only a new execution runs the fixed one)."""
    stopped = last.get("stopDate")
    if last.get("redriveStatus") == "NOT_REDRIVABLE":
        return f"AWS will not redrive {last['name']}: {last.get('redriveStatusReason') or 'not redrivable'}"
    if stopped and now - stopped > REDRIVE_WINDOW:
        return f"{last['name']} stopped more than 14 days ago, past the time AWS redrives an execution"
    ran = last.get("stateMachineVersionArn")
    if ran and live_version and ran != live_version:
        return (f"{last['name']} ran version {versions.version_number(ran)}, and version "
                f"{versions.version_number(live_version)} is live now: a redrive would run the old definition")
    return ""


def next_name(run: Run) -> str:
    suffix = f"-c{len(run.executions) + 1}"
    if len(run.id) + len(suffix) <= NAME_LIMIT:
        return run.id + suffix
    # Cut short, the name keeps a digest of the whole run id: two long names that differ only at their end
    # would otherwise give one name to both runs' continuations (a name is taken for 90 days).
    return f"{run.id[:KEPT]}-{hashlib.sha256(run.id.encode()).hexdigest()[:6]}{suffix}"


def describe(p: Plan) -> list[str]:
    d = p.decision
    last = p.run.last
    lines = [f"run {p.run.id}: {len(p.run.executions)} execution(s); the last, {last['name']}, {last['status']}"]
    if d.kind == "done":
        return lines + ["nothing to do: the run succeeded"]
    if p.note:
        lines.append(f"{p.note} (to pick the stage yourself: stepkit run PIPELINE --from STAGE)")
    if d.kind == "redrive":
        return lines + [f"redrive {last['name']}: {d.reason}"]
    done = ", ".join(d.input["done"]) or "none"
    return lines + [f"continue in a new execution {next_name(p.run)}: {d.reason}", f"stages kept: {done}"]


def act(session: Session, p: Plan, echo: Callable[[str], None] = print) -> str:
    """Redrive the run's last execution, or start the next one; returns the execution's name."""
    sfn = session.client("stepfunctions")
    last = p.run.last
    if p.decision.kind == "done":
        raise StepkitError(f"run {p.run.id} succeeded (execution {last['name']}): nothing to redrive")
    if p.decision.kind == "redrive":
        sfn.redrive_execution(executionArn=last["executionArn"])
        echo(f"redriven {last['name']}: its failed states run again on the definition it ran")
        return last["name"]
    machine_arn = unqualified(last["stateMachineArn"])
    name = next_name(p.run)
    return start(session, machine_arn, name, p.decision.input, echo)


def start(session: Session, machine_arn: str, name: str, given: dict[str, Any],
          echo: Callable[[str], None] = print) -> str:
    """StartExecution of `name` with `given` on the alias new runs start (the machine itself if none)."""
    sfn = session.client("stepfunctions")
    live = versions.live(sfn, machine_arn)
    target = live.alias_arn if live else machine_arn
    sfn.start_execution(stateMachineArn=target, name=name,
                                                                   input=json.dumps(given, sort_keys=True))
    echo(f"started {name} (" + (f"version {live.number}, alias {versions.ALIAS}" if live else "the latest revision")
         + f"), skipping {', '.join(given.get('done') or []) or 'nothing'}")
    return name


def start_from(session: Session, machine_arn: str, order: list[str], stage: str, run_id: str | None,
               echo: Callable[[str], None] = print) -> str:
    """`stepkit run PIPELINE --from STAGE [--run RUN]`: STAGE and every stage after it run again in a new
    execution of the latest run (which RUN, when given, must be: a later run's first clean-up dropped
    an earlier run's tables)."""
    sfn = session.client("stepfunctions")
    running = sfn.list_executions(stateMachineArn=machine_arn, statusFilter="RUNNING").get("executions", [])
    name = machine_arn.rsplit(":", 1)[-1]
    if running:
        raise AwsError(in_the_way(running, name))
    m = Machine(machine_arn, name, "")
    run = find_run(session, m, None)
    if run_id and run_id != run.id:
        raise StepkitError(f"--run {run_id}: the latest run of {name} is {run.id}, which dropped the tables of the "
                           "runs before it; start from a stage of the latest run, or start a new run")
    blocked = later_run(session, run)
    if blocked:
        raise StepkitError(f"--from {stage}: {blocked}")
    try:
        given = recovery.start_from(recovery.Shape.of(run.definition), order, stage, run.id, run.histories)
    except ValueError as e:
        raise StepkitError(f"--from {stage}: {e}") from None
    gone = files_gone(session, run, datetime.now(timezone.utc)) if given["done"] else None
    if gone:
        raise StepkitError(f"--from {stage}: {gone}")
    return start(session, machine_arn, next_name(run), given, echo)
