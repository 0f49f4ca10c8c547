"""How an unfinished run continues: redrive it, or start a new execution of the same run.

A run is one or more executions of the compiled state machine sharing a run id (`$.run.id`).
When one fails, is stopped or is killed, what happens next depends on what was running:

- every unfinished state may simply run again (a container task, a Map's batches, the cleanup
  function, a Wait): **redrive** the execution, as AWS's RedriveExecution does. The states that
  finished are not run again; a Map re-runs only its unfinished items.
- an unfinished state is an Athena write (a CTAS or INSERT INTO may have left files; a CTAS that
  finished just before the run was killed left a table), or the failure path ran (its Fail state
  is the failed step, and its clean-up deleted tables): **continue** in a new execution with
  `{"run": {"id": RUN}, "done": {finished stages}}`. Each stage not done runs its prepare state
  first (compiler/wiring.py), so it starts from nothing.

Both are decided from the histories alone, the same way for a local run and for `stepkit redrive`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FINAL = {"ExecutionSucceeded": "SUCCEEDED", "ExecutionFailed": "FAILED", "ExecutionAborted": "ABORTED",
         "ExecutionTimedOut": "TIMED_OUT"}


@dataclass(frozen=True)
class Decision:
    kind: str  # "redrive" | "continue" | "done"
    reason: str
    input: dict[str, Any] | None = None  # for "continue": the new execution's input


def status(events: list[dict[str, Any]]) -> str:
    """SUCCEEDED / FAILED / ABORTED / TIMED_OUT, or RUNNING for a history that just stops (a killed run)."""
    for e in reversed(events):
        if e.get("type") in FINAL and "execution" not in e:
            return FINAL[e["type"]]
        if e.get("type") == "ExecutionRedriven":
            return "RUNNING"
    return "RUNNING"


def _name(e: dict[str, Any], key: str) -> str | None:
    details = e.get(key)
    return details.get("name") if isinstance(details, dict) else None


def unfinished(events: list[dict[str, Any]]) -> set[str]:
    """States of the execution (not of a Map's child executions) entered and not exited since its last
    start or redrive. A Fail state never exits: it is unfinished once entered."""
    open_: dict[str, int] = {}
    for e in events:
        if "execution" in e:
            continue
        kind = e.get("type", "")
        if kind == "ExecutionRedriven":
            open_ = {}  # what a redrive re-runs is entered again; older entries are settled
        elif kind.endswith("StateEntered"):
            name = _name(e, "stateEnteredEventDetails")
            if name:
                open_[name] = open_.get(name, 0) + 1
        elif kind.endswith("StateExited"):
            name = _name(e, "stateExitedEventDetails")
            if name and open_.get(name):
                open_[name] -= 1
    return {name for name, n in open_.items() if n > 0}


def finished(plan: Any, events: list[dict[str, Any]]) -> set[str]:
    """Stages this execution finished, or skipped because an earlier one had (its input's `done`)."""
    exits = {state: s.name for s in plan.stages for state in s.exits}
    out: set[str] = set()
    for e in events:
        if "execution" in e:
            continue
        if e.get("type") == "ExecutionStarted":
            given = e.get("executionStartedEventDetails", {}).get("input")
            try:
                import json

                out |= set((json.loads(given or "{}") or {}).get("done") or {})
            except (ValueError, TypeError, AttributeError):
                pass
        elif e.get("type", "").endswith("StateExited"):
            stage = exits.get(_name(e, "stateExitedEventDetails") or "")
            if stage:
                out.add(stage)
    return out


def decide(plan: Any, histories: list[list[dict[str, Any]]], run_id: str) -> Decision:
    """What to do with the run whose executions' histories (oldest first) are `histories`."""
    last = histories[-1]
    state = status(last)
    if state == "SUCCEEDED":
        return Decision("done", "the run's last execution succeeded")
    fail_states = _fail_states(plan.definition)
    open_ = unfinished(last)
    blocking = sorted(n for n in open_ if n in fail_states or
                      (n in plan.stage_of and not plan.stage(plan.stage_of[n]).repeatable))
    if not blocking:
        return Decision("redrive", "every unfinished state can run again as it is: "
                        + (", ".join(sorted(open_)) or "none"))
    done: set[str] = set()
    for events in histories:
        done |= finished(plan, events)
    deleted = _deleted_by_failure_path(plan, histories)
    known = {s.name for s in plan.stages if s.guarded}  # unguarded stages always run (state only)
    done = {s for s in done & known if not (set(plan.stage(s).prepares) | plan.stage(s).flow.writes) & deleted}
    return Decision("continue", f"{', '.join(blocking)} cannot run again as it is (an Athena write, or the "
                    "failure path ran): a new execution of the same run, after its stages' clean-up",
                    {"run": {"id": run_id}, "done": {name: True for name in sorted(done)}})


def _fail_states(definition: dict[str, Any]) -> set[str]:
    out: set[str] = set()

    def walk(states: dict[str, Any]) -> None:
        for name, state in states.items():
            if state.get("Type") == "Fail":
                out.add(name)
            for branch in state.get("Branches", []):
                walk(branch.get("States", {}))
    walk(definition.get("States", {}))
    return out


def _deleted_by_failure_path(plan: Any, histories: list[list[dict[str, Any]]]) -> set[str]:
    """Table keys the on_failure clean-up deleted in any execution of the run."""
    of = plan.context.p.on_failure
    keys = set(of.drop_tables) | set(of.delete_data)
    if not keys:
        return set()
    for events in histories:
        for e in events:
            if e.get("type", "").endswith("StateEntered") and _name(e, "stateEnteredEventDetails") == "CleanupOnFailure":
                return keys
    return set()
