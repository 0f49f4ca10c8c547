"""Operating a deployed pipeline: start a run, list runs, a run's status, a stage's logs, the results.

Replaces the seed's "Monitoring Commands". Commands that take no pipeline file find the state
machine by stepkit's tags in the session's region (`--pipeline NAME` picks one of several).
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from stepkit.aws import timeline, versions
from stepkit.aws.versions import version_label
from stepkit.ir.cfn import TAG_PIPELINE
from stepkit.aws.session import Session, explain
from stepkit.errors import AwsError, StepkitError

RUN_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def run_name() -> str:
    """A sortable, unique execution name; it is also the run id in table locations."""
    return datetime.now(timezone.utc).strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _load(pipeline_path: str | Path, variables: dict[str, str] | None):
    from stepkit.ir.names import Names
    from stepkit.compiler.load import load_pipeline

    pipeline, _ = load_pipeline(pipeline_path, variables)
    return pipeline, Names(pipeline)


# An execution name reaches SQL (table locations, through States.Format) and S3 keys: StartExecution
# allows quotes and more, so stepkit allows only these.
RUN_NAME_RULE = "1-80 letters, digits, '-' or '_' (it names S3 folders and reaches SQL)"


def check_run_name(name: str) -> None:
    if not 1 <= len(name) <= 80 or set(name) - RUN_NAME_CHARS:
        raise StepkitError(f"run name {name!r}: {RUN_NAME_RULE}")


def in_the_way(running: list[dict[str, Any]], machine_name: str, stage: str | None = None) -> str:
    """The one line `stepkit run` ends with when a run is going (ListExecutions RUNNING, newest first)."""
    e = running[0]
    started = e["startDate"].astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = f", now at {stage}" if stage else ""
    more = f" (and {len(running) - 1} more)" if len(running) > 1 else ""
    return (f"{machine_name}: run {e['name']} is still running (started {started}{where}){more}; one run at a time, "
            f"as the state machine itself refuses a second: wait for it (`stepkit status {e['name']}`) or stop it "
            f"(`aws stepfunctions stop-execution --execution-arn {e['executionArn']}`)")


def start_run(pipeline_path: str | Path, variables: dict[str, str] | None = None, name: str | None = None,
              session: Session | None = None, echo: Callable[[str], None] | None = None,
              start: str | None = None, run: str | None = None) -> str:
    """Start an execution of the deployed state machine's alias `live`; returns its name (the run id).
    `start`: a stage of the latest run (`run`, if given, must be it) to run again with those after it."""
    from botocore.exceptions import BotoCoreError, ClientError

    pipeline, names = _load(pipeline_path, variables)
    if start:
        from stepkit.aws import redrive

        order = [s.name for s in pipeline.stages]
        return redrive.start_from(session or Session(region=pipeline.aws.region), names.state_machine_arn, order,
                                  start, run, echo or (lambda line: None))
    name = run_name() if name is None else name
    check_run_name(name)
    sfn = (session or Session(region=pipeline.aws.region)).client("stepfunctions")
    machine_arn = names.state_machine_arn
    try:
        running = sfn.raw.list_executions(stateMachineArn=machine_arn, statusFilter="RUNNING").get("executions", [])
        if running:
            stage = _current_stage(sfn, running[0]["executionArn"])
            raise AwsError(in_the_way(running, names.state_machine, stage))
        live = versions.live(sfn, machine_arn)
        target = live.alias_arn if live else machine_arn
        sfn.raw.start_execution(stateMachineArn=target, name=name, input="{}")
    except BotoCoreError as e:  # no credentials, no endpoint...: not a ClientError, same one-line mapping
        raise explain(e, "states:StartExecution") or e from None
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "StateMachineDoesNotExist":
            raise AwsError(f"states:StartExecution: state machine {names.state_machine} does not exist in "
                           f"{pipeline.aws.region}: run `stepkit deploy {pipeline_path}` first") from None
        if code == "ExecutionAlreadyExists":
            raise AwsError(f"states:StartExecution: a run named {name!r} already exists: pick another name") from None
        action = "states:ListExecutions" if e.operation_name == "ListExecutions" else "states:StartExecution"
        raise explain(e, action) or e from None
    if echo:
        echo(f"version {live.number} (alias {versions.ALIAS})" if live else
             f"no alias {versions.ALIAS!r} yet: the latest revision runs (deploy again to publish versions)")
    return name


def _current_stage(sfn: Any, execution_arn: str) -> str | None:
    """The stage a running execution is in (its newest entered state), from the end of its history."""
    events = sfn.raw.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=50).get("events", [])
    for e in events:
        details = e.get("stateEnteredEventDetails")
        if details:
            return details.get("name")
    return None


@dataclass(frozen=True)
class Machine:
    arn: str
    name: str
    pipeline: str


def machines(session: Session) -> list[Machine]:
    """State machines stepkit deployed in the session's region (by their tags)."""
    sfn = session.client("stepfunctions")
    out = []
    for page in sfn.get_paginator("list_state_machines").paginate():
        for m in page.get("stateMachines", []):
            tags = {t["key"]: t["value"] for t in sfn.list_tags_for_resource(resourceArn=m["stateMachineArn"]).get("tags", [])}
            if TAG_PIPELINE in tags:
                out.append(Machine(m["stateMachineArn"], m["name"], tags[TAG_PIPELINE]))
    return sorted(out, key=lambda m: m.name)


def machine(session: Session, pipeline: str | None = None) -> Machine:
    found = machines(session)
    if pipeline:
        found = [m for m in found if pipeline in (m.pipeline, m.name)]
    if not found:
        what = f"for pipeline {pipeline!r} " if pipeline else ""
        raise AwsError(f"no stepkit state machine {what}in {session.region}: deploy first (`stepkit deploy PIPELINE`), "
                       "or check --region")
    if len(found) > 1:
        raise StepkitError(f"{len(found)} stepkit pipelines in {session.region} "
                           f"({', '.join(m.pipeline for m in found)}): pick one with --pipeline NAME")
    return found[0]


def runs(session: Session, pipeline: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
    m = machine(session, pipeline)
    sfn = session.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=m.arn, maxResults=limit).get("executions", [])


def render_runs(executions: list[dict[str, Any]], now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    lines = [f"{'run':<36}{'status':<11}{'started (UTC)':<21}{'took':<9}version"]
    for e in executions:
        took = timeline.duration(((e.get("stopDate") or now) - e["startDate"]).total_seconds())
        lines.append(f"{e['name']:<36}{e['status']:<11}{e['startDate'].astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}  "
                     f"{took:<9}{version_label(e)}")
    return lines


def execution_arn(m: Machine, execution: str | None, session: Session) -> str:
    if execution and execution.startswith("arn:"):
        return execution
    if execution:
        return m.arn.replace(":stateMachine:", ":execution:", 1) + f":{execution}"
    latest = session.client("stepfunctions").list_executions(stateMachineArn=m.arn, maxResults=1).get("executions", [])
    if not latest:
        raise StepkitError(f"{m.name}: no runs yet: start one with `stepkit run PIPELINE`")
    return latest[0]["executionArn"]


def status(session: Session, execution: str | None = None, pipeline: str | None = None) -> timeline.Timeline:
    m = machine(session, pipeline)
    arn = execution_arn(m, execution, session)
    sfn = session.client("stepfunctions")
    desc = sfn.describe_execution(executionArn=arn)
    events = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
              for e in page.get("events", [])]
    t = timeline.build(desc, events)
    for progress in t.maps.values():
        # A Distributed Map's items run as child executions: their counts come from the Map Run.
        if progress.map_run_arn:
            counts = sfn.describe_map_run(mapRunArn=progress.map_run_arn).get("itemCounts", {})
            progress.total = counts.get("total", progress.total)
            progress.succeeded, progress.failed = counts.get("succeeded", 0), counts.get("failed", 0)
            progress.running, progress.pending = counts.get("running", 0), counts.get("pending", 0)
    return t


# --- logs
def _states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition.get("States", {}).items():
        yield name, state
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from ((name, s) for _, s in _states(inner))  # a Map's work logs under the Map's name
        for branch in state.get("Branches", []):  # a Parallel's stages are stages of their own
            yield from _states(branch)


@dataclass(frozen=True)
class LogSource:
    group: str
    pattern: str = ""  # CloudWatch filter pattern (the state machine's own log is shared by all stages)


def log_source(session: Session, m: Machine, stage: str) -> LogSource:
    sfn = session.client("stepfunctions")
    desc = sfn.describe_state_machine(stateMachineArn=m.arn)
    definition = json.loads(desc["definition"])
    states = [s for name, s in _states(definition) if name == stage]
    if not states:
        names = ", ".join(n for n, s in _states(definition) if s.get("Type") in ("Task", "Map", "Wait")
                          and not n.endswith(".prepare"))
        raise StepkitError(f"{m.name}: no stage named {stage!r} (stages: {names})")
    tasks = [s for s in states if s.get("Type") == "Task"]
    state = tasks[-1] if tasks else states[0]
    resource, params = state.get("Resource", ""), state.get("Parameters", {})
    if "ecs:runTask" in resource:
        family = params["TaskDefinition"]
        td = session.client("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]
        for c in td.get("containerDefinitions", []):
            options = (c.get("logConfiguration") or {}).get("options", {})
            if "awslogs-group" in options:
                return LogSource(options["awslogs-group"])
        raise StepkitError(f"{stage}: task definition {family} sends no logs to CloudWatch")
    if "lambda:invoke" in resource:
        fn = params["FunctionName"]
        conf = session.client("lambda").get_function_configuration(FunctionName=fn)
        return LogSource((conf.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{conf['FunctionName']}")
    destinations = (desc.get("loggingConfiguration") or {}).get("destinations", [])
    for d in destinations:
        arn = d.get("cloudWatchLogsLogGroup", {}).get("logGroupArn", "")
        if ":log-group:" in arn:
            return LogSource(arn.split(":log-group:", 1)[1].removesuffix(":*"), f'"{stage}"')
    raise StepkitError(f"{stage}: runs in Step Functions itself and {m.name} has logging off; see `stepkit status`")


def logs(session: Session, stage: str, pipeline: str | None = None, since: datetime | None = None,
         follow: bool = False, echo: Callable[[str], None] = print, poll_seconds: float = 2.0,
         max_polls: int | None = None) -> int:
    """Print the stage's log events (since the latest run started); returns how many were printed."""
    m = machine(session, pipeline)
    src = log_source(session, m, stage)
    if since is None:
        latest = session.client("stepfunctions").list_executions(stateMachineArn=m.arn, maxResults=1).get("executions", [])
        since = latest[0]["startDate"] if latest else datetime.now(timezone.utc) - timedelta(hours=1)
    cw = session.client("logs")
    start_ms = int(since.timestamp() * 1000)
    seen: set[str] = set()
    printed, polls = 0, 0
    while True:
        kwargs: dict[str, Any] = {"logGroupName": src.group, "startTime": start_ms}
        if src.pattern:
            kwargs["filterPattern"] = src.pattern
        for page in cw.get_paginator("filter_log_events").paginate(**kwargs):
            for ev in page.get("events", []):
                if ev["eventId"] in seen:
                    continue
                seen.add(ev["eventId"])
                ts = datetime.fromtimestamp(ev["timestamp"] / 1000, timezone.utc)
                echo(f"{ts:%H:%M:%S} {ev.get('logStreamName', '')}  {ev['message'].rstrip()}")
                printed += 1
                start_ms = max(start_ms, ev["timestamp"])
        polls += 1
        if not follow or (max_polls is not None and polls >= max_polls):
            return printed
        time.sleep(poll_seconds)


# --- results
def _results_table(pipeline: Any) -> str:
    """The results table: the key `final_results`, else the last table the pipeline names."""
    keys = pipeline.tables.names()
    return keys.get("final_results") or list(keys.values())[-1]


def summary_sql(pipeline: Any) -> str:
    """The seed's final-results check, on this pipeline's table and every target: rows, the mean
    prediction (a class's: its share of rows) and confidence (a class's: its probability), nulls."""
    from stepkit.spec.columns import Columns

    table = f"{pipeline.aws.database}.{_results_table(pipeline)}"
    cols = Columns(pipeline.target_list)
    parts = ["COUNT(*) AS total_predictions"]
    for t in pipeline.target_list:
        col = cols.predicted(t)
        if t.task == "regression":
            parts.append(f"AVG({col}) AS avg_{t.name}")
        else:  # the share of rows given the default class (true, for a boolean target)
            default = "true" if t.type == "boolean" else "'" + str(t.default).lower().replace("'", "''") + "'"
            parts.append(f"AVG(CASE WHEN {col} = {default} THEN 1.0 ELSE 0.0 END) AS share_{t.name}_default")
        confidence = cols.of("confidence_score" if t.task == "regression" else "probability", t)
        parts += [f"AVG({confidence}) AS {cols.of('avg_confidence', t)}",
                  f"SUM(CASE WHEN {col} IS NULL THEN 1 ELSE 0 END) AS {cols.of('null_predictions', t)}"]
    return f"SELECT {', '.join(parts)} FROM {table}"


def results(pipeline_path: str | Path, variables: dict[str, str] | None = None,
            session: Session | None = None, poll_seconds: float = 1.0) -> dict[str, str | None]:
    from stepkit.aws.athena import AthenaEngine

    pipeline, names = _load(pipeline_path, variables)
    engine = AthenaEngine(session or Session(region=pipeline.aws.region), pipeline.aws.workgroup,
                          names.query_results, pipeline.aws.database, poll_seconds=poll_seconds)
    result = engine.execute(summary_sql(pipeline))
    if not result.rows:
        raise AwsError(f"{pipeline.aws.database}.{_results_table(pipeline)}: Athena returned no summary row")
    return dict(zip(result.columns, result.rows[0]))
