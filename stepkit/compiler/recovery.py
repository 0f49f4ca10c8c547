"""How an unfinished run continues: redrive it, or start a new execution of the same run.

A run is one or more executions of the compiled state machine sharing a run id (`$.run.id`). When
one fails, is stopped or is killed, what happens next depends on what was running:

- every unfinished state may simply run again (a container task, a Map's batches, the cleanup
  function, a Wait): **redrive** the execution, as AWS's RedriveExecution does. The states that
  finished are not run again; a Map re-runs only its unfinished items.
- an unfinished state is an Athena write (a CTAS or INSERT INTO may have left files behind; a CTAS
  that finished just before the run was killed left its table), or the failure path ran (its Fail
  state is the failed step, and its clean-up deleted tables): **continue** the run in a new
  execution started with `{"run": {"id": RUN}, "done": {finished stages}}`. Each stage not done runs
  its prepare state first (compiler/wiring.py), so it starts from nothing.

Everything is read from the definition and the histories alone (`Shape`), with stepkit's own naming
of states (wiring.py): the same decision for a local run (`--resume`) and for a deployed one
(`stepkit redrive`), which has no pipeline file at hand.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from stepkit.compiler.wiring import (ANOTHER_RUN, CHECK_OTHER_RUNS, CHECK_RUN_ID, CLEANUP_ON_FAILURE, INVALID_RUN_ID,
                                    NEW_RUN, ONE_RUN_AT_A_TIME, START, guard_name, prepare_name)
from stepkit.ir.asl import every_state

FINAL = {"ExecutionSucceeded": "SUCCEEDED", "ExecutionFailed": "FAILED", "ExecutionAborted": "ABORTED",
         "ExecutionTimedOut": "TIMED_OUT"}
ATHENA = "arn:aws:states:::athena:"
GUARD = guard_name("")  # the suffix a stage's guard has
PREPARE = prepare_name("")
# What every execution runs before its first stage (wiring.py): the run id, then one run at a time.
START_STATES = {START, NEW_RUN, CHECK_RUN_ID, INVALID_RUN_ID, CHECK_OTHER_RUNS, ONE_RUN_AT_A_TIME, ANOTHER_RUN}


@dataclass
class Stage:
    name: str
    states: list[str] = field(default_factory=list)  # guard, prepare, its own (Map items included)
    exits: list[str] = field(default_factory=list)  # the states whose end is the stage's end
    repeatable: bool = True  # no Athena write: a failed attempt may simply run again
    tables: set[str] = field(default_factory=set)  # what it writes (what its prepare state drops)
    drops: set[str] = field(default_factory=set)  # what it drops, a clean-up stage (stepkit's cleanup function)


@dataclass
class Shape:
    """The stages of a compiled definition, as recovery needs them."""

    stages: dict[str, Stage]
    stage_of: dict[str, str]
    fail_states: set[str]
    failure_drops: set[str] = field(default_factory=set)  # what the on_failure clean-up drops, if any

    @classmethod
    def of(cls, definition: dict[str, Any]) -> "Shape":
        everything = dict(_all_states(definition))
        stages: dict[str, Stage] = {}
        stage_of: dict[str, str] = {}
        cleaner = {_function(st) for n, st in everything.items() if n.endswith(PREPARE)} - {None}
        for name, state in everything.items():
            if not (name.endswith(GUARD) and state.get("Type") == "Choice"):
                continue
            s = Stage(name[: -len(GUARD)])
            own = [name]
            if prepare_name(s.name) in everything:
                own.append(prepare_name(s.name))
                s.tables = _tables(everything[prepare_name(s.name)])
            # The stage's own states: from the guard's Default, along Next, up to where the guard sends
            # a stage already done (what follows the stage; its `.skipped` Pass at the end of a scope).
            after = (state.get("Choices") or [{}])[0].get("Next")
            at, chain = state.get("Default"), []
            while at and at in everything and at != after:
                chain.append(at)
                at = everything[at].get("Next")
            s.exits = chain[-1:]
            skipped = f"{s.name}.skipped"
            own += chain + ([skipped] if skipped in everything else [])
            for member in chain:
                processor = everything[member].get("ItemProcessor") or everything[member].get("Iterator") or {}
                own += list(dict(_all_states(processor)))
            s.states = own
            s.repeatable = not any(str(everything.get(n, {}).get("Resource", "")).startswith(ATHENA)
                                   for n in chain)
            s.drops = {t for n in chain if _function(everything[n]) in cleaner for t in _tables(everything[n])}
            stages[s.name] = s
            stage_of.update(dict.fromkeys(own, s.name))
        fails = {n for n, st in everything.items() if st.get("Type") == "Fail"}
        return cls(stages, stage_of, fails, _tables(everything.get(CLEANUP_ON_FAILURE, {})))


def _function(state: dict[str, Any]) -> str | None:
    return (state.get("Parameters") or {}).get("FunctionName") if state.get("Type") == "Task" else None


def _tables(state: dict[str, Any]) -> set[str]:
    """The tables a call of stepkit's cleanup function drops (its payload's `tables`)."""
    payload = (state.get("Parameters") or {}).get("Payload") or {}
    return {t["name"] for t in payload.get("tables", []) if isinstance(t, dict) and "name" in t}


def _all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((name, state) for _, name, state in every_state(definition))


@dataclass(frozen=True)
class Decision:
    kind: str  # "redrive" | "continue" | "done" | "new" (the run cannot go on: start a new run)
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


def past_the_start(events: list[dict[str, Any]]) -> bool:
    """Whether an execution went on past the start states: its first stage (a new run's clean-up of every
    run's tables) may have run. One that stopped in them touched no table."""
    return any(_name(e, "stateEnteredEventDetails") not in (None, *START_STATES) for e in events)


def given_input(events: list[dict[str, Any]]) -> dict[str, Any]:
    for e in events:
        if e.get("type") == "ExecutionStarted" and "execution" not in e:
            try:
                data = json.loads(e.get("executionStartedEventDetails", {}).get("input") or "{}")
            except (TypeError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def done_stages(shape: Shape, histories: list[list[dict[str, Any]]], kept: bool = True) -> set[str]:
    """The stages the run's executions (oldest first) finished whose tables are still there: a clean-up
    stage that finished since (the pipeline's last stage, say) dropped some; the failure path, if it
    ran, dropped the ones the spec's on_failure names. `kept=False`: every stage finished, dropped or not."""
    exits = {state: s.name for s in shape.stages.values() for state in s.exits}
    done: set[str] = set()
    for events in histories:
        done = (done | set(given_input(events).get("done") or {})) & set(shape.stages)
        for e in events:
            if "execution" in e:
                continue
            if kept and _name(e, "stateEnteredEventDetails") == CLEANUP_ON_FAILURE:
                # What it drops, and only that: every stage that wrote one of those tables runs again (keeping one
                # of them would let the other's prepare state delete what the kept one wrote).
                done = {s for s in done if not shape.stages[s].tables & shape.failure_drops}
            stage = exits.get(_name(e, "stateExitedEventDetails") or "") if e.get("type", "").endswith("StateExited") \
                else None
            if stage:
                dropped = shape.stages[stage].drops if kept else set()
                done = {s for s in done if not shape.stages[s].tables & dropped} | {stage}
    return done


def run_id(events: list[dict[str, Any]], execution_name: str) -> str:
    """The run an execution belongs to: its input's `run.id`, else its own name."""
    run = given_input(events).get("run")
    return str(run["id"]) if isinstance(run, dict) and run.get("id") else execution_name


def decide(shape: Shape, histories: list[list[dict[str, Any]]], run: str) -> Decision:
    """What to do with the run whose executions' histories (oldest first) are `histories`."""
    last = histories[-1]
    if status(last) == "SUCCEEDED":
        return Decision("done", "the run's last execution succeeded")
    open_ = unfinished(last)
    if INVALID_RUN_ID in open_:  # a new execution of the run would carry the same id, and stop there again
        return Decision("new", "CheckRunId refuses its run id (it names the run's tables and folders): no execution "
                        "of it can go on; start a new run")
    blocking = sorted(n for n in open_ if n in shape.fail_states or
                      (n in shape.stage_of and not shape.stages[shape.stage_of[n]].repeatable
                       and n != prepare_name(shape.stage_of[n])))
    if not blocking:
        return Decision("redrive", "every unfinished state can run again as it is: "
                        + (", ".join(sorted(open_)) or "none"))
    return Decision("continue", f"{', '.join(blocking)} cannot run again as it is (an Athena write, or the "
                    "failure path ran): a new execution of the same run, after its stages' clean-up",
                    continue_input(shape, histories, run))


def continue_input(shape: Shape, histories: list[list[dict[str, Any]]], run: str) -> dict[str, Any]:
    """The input of a new execution of `run` that skips the stages its executions finished."""
    return {"run": {"id": run}, "done": {name: True for name in sorted(done_stages(shape, histories))}}


def start_from(shape: Shape, order: list[str], stage: str, run: str,
               histories: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The input of an execution of `run` that runs `stage` and every stage after it in `order` (the
    spec's stage order) again, reusing the tables of the stages before it, which the run must have
    finished. A ValueError says what is wrong, in words for the user."""
    known = [name for name in order if name in shape.stages]
    if stage not in known:
        raise ValueError(f"no stage {stage!r} to start from (stages: {', '.join(known)})")
    before = known[: known.index(stage)]
    done = done_stages(shape, histories)
    missing = [name for name in before if name not in done]
    gone = [name for name in missing if name in done_stages(shape, histories, kept=False)]
    if gone:
        raise ValueError(f"the tables of {', '.join(gone)}, which come before {stage}, are gone (a clean-up of the "
                         f"run dropped them): start from {missing[0]}")
    if missing:
        raise ValueError(f"run {run} has not finished {', '.join(missing)}, which come before {stage}: start "
                         f"from {missing[0]} (or resume the run)")
    return {"run": {"id": run}, "done": {name: True for name in before}}
