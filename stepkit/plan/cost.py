"""`stepkit cost RUN`: what a run did cost, measured, beside what the plan said.

On AWS (RUN: an execution name or ARN of the deployed state machine):
- Athena: bytes scanned and engine time of every query the run started (GetQueryExecution
  statistics). Query ids come from the execution history (the Athena tasks' outputs) and,
  for queries the history no longer shows, from the workgroup's recent queries whose text
  holds the run id (every statement stepkit compiles names its run's location);
- Fargate: each task's start-up (createdAt to pullStartedAt), image pull and billed seconds
  (pull start to stop; one-minute minimum) from ECS DescribeTasks, tasks found in the history
  or by the run id in their command;
- Step Functions: state transitions, from the history (states entered, plus task retries), Map
  children's included.
On a local run (a folder with run.json, or its id under --workdir): the measured rows/s per
core that `stepkit plan --from-run` uses.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

from stepkit.ir.asl import every_state
from stepkit.plan.scan import query_text

QUERY_ID = re.compile(r'"QueryExecutionId"\s*:\s*"([0-9a-f-]{36})"', re.I)
TASK_ARN = re.compile(r'"(arn:aws[\w-]*:ecs:[\w-]+:\d{12}:task/[\w./-]+)"')
BILLING_MINIMUM_S = 60


@dataclass
class Query:
    id: str
    state: str | None
    sql: str
    kind: str  # DML, DDL, UTILITY
    bytes_scanned: int
    engine_ms: int
    total_ms: int

    @property
    def gb_per_s(self) -> float | None:
        return self.bytes_scanned / 1024 ** 3 / (self.engine_ms / 1000) if self.engine_ms else None


@dataclass
class Task:
    arn: str
    family: str
    cpu: float
    memory_gb: float
    provisioning_s: float | None
    pull_s: float | None
    billed_s: float | None
    running_s: float | None


@dataclass
class Actuals:
    execution: str
    status: str
    seconds: float
    stages: list[Any]  # timeline.Stage
    queries: list[Query] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    transitions: int = 0
    retries: int = 0
    notes: list[str] = field(default_factory=list)


# --- reading an execution
def _events(sfn: Any, arn: str) -> list[dict[str, Any]]:
    return [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
            for e in page.get("events", [])]


def _children(sfn: Any, events: list[dict[str, Any]]) -> Iterator[str]:
    """Child executions of the run's Distributed Maps."""
    for e in events:
        if e["type"] == "MapRunStarted":
            run = e.get("mapRunStartedEventDetails", {}).get("mapRunArn")
            for page in sfn.get_paginator("list_executions").paginate(mapRunArn=run):
                for ex in page.get("executions", []):
                    yield ex["executionArn"]


def transitions(events: list[dict[str, Any]]) -> tuple[int, int]:
    """(states entered, task retries) in one execution's history: both are billed transitions."""
    entered = sum(1 for e in events if e["type"].endswith("StateEntered"))
    scheduled = Counter(e["type"] for e in events)["TaskScheduled"]
    tasks_entered = Counter(e["type"] for e in events)["TaskStateEntered"]
    return entered, max(0, scheduled - tasks_entered)


def ids_in(events: list[dict[str, Any]]) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """Query ids and ECS task ARNs named anywhere in the events, each with the state it ran in."""
    by_id = {e["id"]: e for e in events}
    queries: dict[str, str | None] = {}
    tasks: dict[str, str | None] = {}
    for e in events:
        text = json.dumps({k: v for k, v in e.items() if k.endswith("EventDetails")}, default=str)
        state = _state_of(e, by_id)
        for qid in QUERY_ID.findall(text):
            queries.setdefault(qid, state)
        for arn in TASK_ARN.findall(text):
            tasks.setdefault(arn, state)
    return queries, tasks


def _state_of(event: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> str | None:
    e, hops = event, 0
    while e is not None and hops < 50:
        if e["type"].endswith("StateEntered"):
            return e["stateEnteredEventDetails"]["name"]
        e, hops = by_id.get(e.get("previousEventId")), hops + 1
    return None


def _seconds(a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    to = (lambda t: t if isinstance(t, datetime) else datetime.fromisoformat(str(t)))
    return (to(b) - to(a)).total_seconds()


def fetch(session: Any, execution_arn: str, definition: dict[str, Any], run_id: str) -> Actuals:
    from stepkit.aws import timeline

    sfn = session.client("stepfunctions")
    desc = sfn.describe_execution(executionArn=execution_arn)
    events = _events(sfn, execution_arn)
    t = timeline.build(desc, events)
    end = desc.get("stopDate") or (events[-1]["timestamp"] if events else desc["startDate"])
    out = Actuals(desc["name"], desc["status"], (end - desc["startDate"]).total_seconds(), t.stages)
    entered, retried = transitions(events)
    queries, tasks = ids_in(events)
    for child in _children(sfn, events):
        child_events = _events(sfn, child)
        e2, r2 = transitions(child_events)
        entered, retried = entered + e2, retried + r2
        q2, t2 = ids_in(child_events)
        queries.update({k: v for k, v in q2.items() if k not in queries})
        tasks.update({k: v for k, v in t2.items() if k not in tasks})
    out.transitions, out.retries = entered + retried, retried
    workgroups, clusters, families = _places(definition)
    out.queries = _queries(session, queries, workgroups, run_id, definition, out.notes)
    out.tasks = _tasks(session, tasks, clusters, families, run_id, out.notes)
    return out


def _places(definition: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    workgroups, clusters, families = set(), set(), set()
    for _, _, state in every_state(definition):
        params = state.get("Parameters", {}) or {}
        if "athena:" in str(state.get("Resource", "")):
            workgroups.add(params.get("WorkGroup", "primary"))
        if "ecs:runTask" in str(state.get("Resource", "")):
            clusters.add(params.get("Cluster", "default"))
            families.add(str(params.get("TaskDefinition", "")).split("/")[-1].split(":")[0])
    return workgroups, clusters, families


def statements(definition: dict[str, Any], run_id: str) -> dict[str, str]:
    """State name -> its SQL with the run id filled in, to name the state a listed query ran in."""
    out: dict[str, str] = {}
    for _, name, state in every_state(definition):
        if "athena:" in str(state.get("Resource", "")):
            sql = query_text(state.get("Parameters", {}) or {}, run_id)
            if sql:
                out[name] = sql
    return out


def _norm(sql: str) -> str:
    return " ".join(sql.split())


def _queries(session: Any, found: dict[str, str | None], workgroups: set[str], run_id: str,
             definition: dict[str, Any], notes: list[str]) -> list[Query]:
    """GetQueryExecution of the history's query ids; then, until every statement of the run is
    found, of the workgroups' recent queries (newest first) whose text holds the run id."""
    athena = session.client("athena")
    texts = {_norm(sql): name for name, sql in statements(definition, run_id).items()}
    out: dict[str, Query] = {}

    def take(qid: str, state: str | None) -> None:
        q = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
        sql = q.get("Query", "")
        state = state or texts.get(_norm(sql))
        if state is None and run_id not in sql:
            return  # another run's query in the same workgroup
        stats = q.get("Statistics", {}) or {}
        out[qid] = Query(qid, state, sql, q.get("StatementType", ""), int(stats.get("DataScannedInBytes", 0)),
                         int(stats.get("EngineExecutionTimeInMillis", 0)), int(stats.get("TotalExecutionTimeInMillis", 0)))

    for qid, state in found.items():
        take(qid, state)
    wanted = set(texts.values())
    for wg in sorted(workgroups):
        for page in athena.get_paginator("list_query_executions").paginate(WorkGroup=wg):
            if wanted <= {q.state for q in out.values()}:
                break
            for qid in page.get("QueryExecutionIds", []):
                if qid not in out:
                    take(qid, None)
    if not out:
        notes.append("no Athena query of this run found (a workgroup lists the queries of the last 45 days)")
    return sorted(out.values(), key=lambda q: (q.state or "", q.id))


def _tasks(session: Any, found: dict[str, str | None], clusters: set[str], families: set[str], run_id: str,
           notes: list[str]) -> list[Task]:
    ecs = session.client("ecs")
    out: list[Task] = []
    seen: set[str] = set()
    for cluster in sorted(clusters):
        arns = [a for a in found if cluster.split("/")[-1] in a or "/" not in a.split(":task/")[-1]]
        for family in sorted(families):
            for status in ("RUNNING", "STOPPED"):
                for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, family=family,
                                                                     desiredStatus=status):
                    arns += page.get("taskArns", [])
        arns = list(dict.fromkeys(arns))
        for i in range(0, len(arns), 100):
            for t in ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + 100]).get("tasks", []):
                if t["taskArn"] in seen:
                    continue
                command = json.dumps(t.get("overrides", {}))
                if t["taskArn"] not in found and run_id not in command:
                    continue  # another run's task
                seen.add(t["taskArn"])
                pull = _seconds(t.get("pullStartedAt"), t.get("pullStoppedAt"))
                running = _seconds(t.get("pullStartedAt"), t.get("stoppedAt"))
                out.append(Task(t["taskArn"], t.get("taskDefinitionArn", "").split("/")[-1].split(":")[0],
                                int(t.get("cpu", 0) or 0) / 1024, int(t.get("memory", 0) or 0) / 1024,
                                _seconds(t.get("createdAt"), t.get("pullStartedAt")), pull,
                                max(BILLING_MINIMUM_S, running) if running is not None else None, running))
    missing = [a for a in found if a not in seen]
    if missing:
        notes.append(f"{len(missing)} task(s) named in the history are no longer described by ECS "
                     "(stopped tasks stay visible for about an hour): their seconds are not counted")
    return out


# --- the report
def render(a: Actuals, plan: Any | None, prices: Any | None) -> list[str]:
    from stepkit.plan.render import minutes

    lines = [f"run {a.execution}: {a.status}, {minutes(a.seconds)} wall"
             + (f" (plan: {minutes(plan.seconds)})" if plan else "")]
    planned = {}
    if plan is not None:
        planned = {n: (scan.bytes_scanned, usd) for n, scan, _, usd in plan.statements}
    scanned = sum(q.bytes_scanned for q in a.queries)
    lines.append(f"Athena: {len(a.queries)} queries, {scanned / 1e9:,.2f} GB scanned"
                 + (f" (plan: {plan.total.counts['bytes_scanned'] / 1e9:,.2f} GB)" if plan else ""))
    lines.append(f"  {'state':<32}{'scanned':>12}{'engine':>9}{'GB/s':>7}{'plan':>12}")
    for q in a.queries:
        mb = 1024 ** 2
        billed = 0 if q.kind == "DDL" else max(10 * mb, -(-q.bytes_scanned // mb) * mb)
        usd = billed / 1024 ** 4 * prices.athena_tb.usd if prices else None
        plan_gb = f"{planned[q.state][0] / 1e9:,.2f} GB" if q.state in planned else ""
        lines.append(f"  {(q.state or q.sql[:30]):<32}{q.bytes_scanned / 1e9:>9,.2f} GB{q.engine_ms / 1000:>8,.1f}s"
                     f"{(format(q.gb_per_s, '.2f') if q.gb_per_s else '-'):>7}{plan_gb:>12}"
                     + (f"  ${usd:.4f}" if usd is not None else ""))
    by_family: dict[str, list[Task]] = {}
    for t in a.tasks:
        by_family.setdefault(t.family, []).append(t)
    for family, ts in sorted(by_family.items()):
        billed = [t.billed_s for t in ts if t.billed_s is not None]
        prov = [t.provisioning_s for t in ts if t.provisioning_s is not None]
        pull = [t.pull_s for t in ts if t.pull_s is not None]
        lines.append(f"Fargate {family}: {len(ts)} task(s), {sum(billed):,.0f} task-seconds billed"
                     + (f", start-up {_mean(prov):,.0f} s (fargate_provisioning_s)" if prov else "")
                     + (f", image pull {_mean(pull):,.0f} s (fargate_pull_s)" if pull else ""))
    if plan is not None:
        for name, t in plan.tasks.items():
            n = plan.total.counts["fargate_tasks"] if t.fan_out else 1
            lines.append(f"  plan {name}: {t.billed_seconds:,.0f} s billed x {n:,.0f} task(s)")
    lines.append(f"Step Functions: {a.transitions:,} transitions ({a.retries} retries)"
                 + (f" (plan: {plan.total.counts['transitions']:,.0f})" if plan else ""))
    lines += [f"note: {n}" for n in a.notes]
    return lines


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)
