"""The stages' states wired into one state machine.

What every execution runs first:

    Start -> [NewRun] -> CheckRunId -> CheckOtherRuns -> OneRunAtATime -> the stages

- The run id lives in the execution's state (`$.run.id`): a new run takes its execution name
  (`NewRun`); an execution that continues an earlier run is started with `{"run": {"id": ...}}`
  and reads and writes that run's tables. `CheckRunId` refuses ids that would break out of a SQL
  string or an S3 folder (Step Functions allows quotes in execution names).
- `CheckOtherRuns` / `OneRunAtATime`: a run's first cleanup deletes every run's intermediate
  tables, so a second execution must not start while one is running. Two started at the same
  moment both stop: safe, never a half-deleted run.

Then the stages, shaped by their data flow (compiler/flow.py): series, and Parallel states for
stages that need nothing from each other. Each stage starts with a guard, `<Stage>.done`: an
execution started with `{"done": {"<Stage>": true, ...}}` skips the stages an earlier execution
of the same run finished, and runs `<Stage>.prepare` (stepkit's cleanup function: drops the
stage's tables and deletes this run's files of them) before a stage that must run again, so a
CTAS never meets a non-empty location and an INSERT INTO never adds a batch group twice. New runs
(no `done`) go straight to the stage.

No stage catches its errors (unless the spec asks for an `on_failure` clean-up): the execution
fails at the failing state, with its error and cause, and a redrive runs that state again. A
Catch would make the Fail state the failed step, and a redrive would run only that.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from stepkit.compiler.flow import Branches, Node, Series
from stepkit.ir import asl
from stepkit.ir.names import RUN_ID_PATH

START = "Start"
CLEANUP_ON_FAILURE = "CleanupOnFailure"  # the on_failure clean-up, when the spec asks for one
FAILED = "Failed"
NEW_RUN = "NewRun"
CHECK_RUN_ID = "CheckRunId"
CHECK_OTHER_RUNS = "CheckOtherRuns"
ONE_RUN_AT_A_TIME = "OneRunAtATime"
INVALID_RUN_ID = "InvalidRunId"
ANOTHER_RUN = "AnotherRunInProgress"
LIST_EXECUTIONS = "arn:aws:states:::aws-sdk:sfn:listExecutions"
DONE = "$.done"
# In a run id these would break out of a SQL string literal, an S3 folder or a JSON string.
FORBIDDEN_IN_RUN_ID = ["*'*", '*"*', "*/*", "*\\\\*", "*..*", "* *"]

Link = Callable[[str | None], None]  # points an exit at the next state (None: the end of its scope)


class NameClash(ValueError):
    """Two states would have one name (or a name too long): `stage` is the stage whose name to change."""

    def __init__(self, message: str, stage: str | None):
        super().__init__(message)
        self.stage = stage


def clash(name: str, one: str | None, other: str | None) -> NameClash:
    """The state `name` of stage `one` (None: stepkit's own) already is stage `other`'s: point at the stage the
    user named so (its name is the state's), else at the one that came last."""
    if one is None or other is None:
        return NameClash(f"makes a state named {name!r}, a state stepkit adds to every state machine; rename it",
                         one or other)
    culprit, beside = (other, one) if other == name else (one, other)
    return NameClash(f"makes a state named {name!r}, as stage {beside} does; rename one", culprit)


@dataclass
class StageStates:
    """One stage's states as the wiring sees them."""

    name: str
    fragment: asl.Fragment
    guard: bool = True  # a stage that only sets execution state always runs (its output is not stored)
    prepare: asl.State | None = None  # the cleanup Task run before it when it runs again


@dataclass
class Wired:
    states: dict[str, asl.State] = field(default_factory=dict)
    # state name -> the stage it belongs to (guards, prepares, chunk statements included)
    stage_of: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)  # every state, in every scope: names are global


def guard_name(stage: str) -> str:
    return f"{stage}.done"


def prepare_name(stage: str) -> str:
    return f"{stage}.prepare"


def _done_path(stage: str) -> str:
    return f"{DONE}['{stage}']"


class _Scope:
    """The states of one scope (the machine, or a Parallel branch): state names are global."""

    def __init__(self, wired: Wired):
        self.wired = wired
        self.states: dict[str, asl.State] = {}

    def add(self, name: str, state: asl.State, stage: str | None = None) -> None:
        if name in self.wired.names:
            raise clash(name, stage, self.wired.stage_of.get(name))
        if len(name) > 80:  # Step Functions' limit; stepkit adds suffixes such as `.prepare`
            raise NameClash(f"makes a state named {name!r}, {len(name)} characters; Step Functions takes at most 80: "
                            "shorten the stage name", stage)
        self.wired.names.add(name)
        self.states[name] = state
        if stage is not None:
            self.wired.stage_of[name] = stage


def _end_links(scope: _Scope, name: str) -> Link:
    def link(target: str | None) -> None:
        state = scope.states[name]
        state.pop("Next", None)
        state.pop("End", None)
        if target is None:
            state["End"] = True
        else:
            state["Next"] = target
    return link


def _stage(scope: _Scope, s: StageStates) -> tuple[str, list[Link]]:
    frag = s.fragment
    guard = guard_name(s.name)
    if s.guard:  # the guard first, then the prepare, then the stage's own states (as they run)
        rules: list[dict[str, Any]] = [{"Variable": _done_path(s.name), "IsPresent": True, "Next": "?"}]
        if s.prepare is not None:
            rules.append({"Variable": DONE, "IsPresent": True, "Next": prepare_name(s.name)})
        scope.add(guard, asl.state(
            "Choice", f"Skips {s.name} when an earlier execution of this run did it (input `done`).",
            Choices=rules, Default=frag.entry), s.name)
        if s.prepare is not None:
            scope.add(prepare_name(s.name), {**s.prepare, "Next": frag.entry}, s.name)
    for name, state in frag.states.items():
        scope.add(name, state, s.name)
    links: list[Link] = [_end_links(scope, name) for name in frag.exits]
    if not s.guard:
        return frag.entry, links

    def skip(target: str | None) -> None:
        if target is None:  # nothing follows in this scope: end it through a Pass
            end = f"{s.name}.skipped"
            scope.add(end, asl.state("Pass", End=True), s.name)
            target = end
        scope.states[guard]["Choices"][0]["Next"] = target
    return guard, [*links, skip]


def _parallel_name(node: Branches, names: list[str]) -> str:
    heads = [names[_first(b)] for b in node.branches]
    name = "Beside." + ".".join(heads)
    return name if len(name) <= 80 else f"Beside.{heads[0]}.and{len(heads) - 1}more"[:80]


def _first(node: Node) -> int:
    if isinstance(node, int):
        return node
    return _first(node.parts[0] if isinstance(node, Series) else node.branches[0])


def _node(scope: _Scope, node: Node, stages: list[StageStates]) -> tuple[str, list[Link]]:
    if isinstance(node, int):
        return _stage(scope, stages[node])
    if isinstance(node, Series):
        entry, links = _node(scope, node.parts[0], stages)
        for part in node.parts[1:]:
            nxt, nxt_links = _node(scope, part, stages)
            for link in links:
                link(nxt)
            links = nxt_links
        return entry, links
    branches = []
    for b in node.branches:
        inner = _Scope(scope.wired)
        entry, links = _node(inner, b, stages)
        for link in links:
            link(None)
        branches.append({"StartAt": entry, "States": inner.states})
    name = _parallel_name(node, [s.name for s in stages])
    scope.add(name, asl.state(
        "Parallel", "Stages that need nothing from each other; a failure in one branch stops the others.",
        Branches=branches, ResultPath=None))
    return name, [_end_links(scope, name)]


def _start_states(scope: _Scope, state_machine_arn: str) -> tuple[str, Link]:
    """The run id, then one run at a time; returns (entry, link to the first stage)."""
    scope.add(START, asl.state("Choice", "A new run, or an earlier run continued (input `run.id`).",
                               Choices=[{"Not": {"Variable": "$.run.id", "IsPresent": True}, "Next": NEW_RUN}],
                               Default=CHECK_RUN_ID))
    scope.add(NEW_RUN, asl.state("Pass", "The execution name is the run id: it names the run's tables.",
                                 Parameters={"id.$": "$$.Execution.Name"}, ResultPath="$.run", Next=CHECK_RUN_ID))
    bad = [{"Variable": RUN_ID_PATH, "StringMatches": p} for p in FORBIDDEN_IN_RUN_ID]
    scope.add(CHECK_RUN_ID, asl.state(
        "Choice", "The run id reaches SQL strings and S3 folders: no quotes, slashes, '..' or spaces.",
        Choices=[{"Or": [{"Not": {"Variable": RUN_ID_PATH, "IsString": True}}, *bad], "Next": INVALID_RUN_ID}],
        Default=CHECK_OTHER_RUNS))
    scope.add(INVALID_RUN_ID, asl.state(
        "Fail", Error="stepkit.InvalidRunId",
        Cause="A run id may hold only letters, digits, '-' and '_' (it names the run's tables and folders)."))
    scope.add(CHECK_OTHER_RUNS, asl.state(
        "Task", "Executions of this pipeline running now (this one included).",
        Resource=LIST_EXECUTIONS,
        Parameters={"StateMachineArn": state_machine_arn, "StatusFilter": "RUNNING", "MaxResults": 2},
        ResultSelector={"running.$": "States.ArrayLength($.Executions)"},
        ResultPath="$.others",
        Retry=[asl.SFN_RETRY.render()],
        Next=ONE_RUN_AT_A_TIME))
    scope.add(ONE_RUN_AT_A_TIME, asl.state(
        "Choice", "A run's first clean-up deletes every run's intermediate tables: one run at a time.",
        Choices=[{"Variable": "$.others.running", "NumericGreaterThan": 1, "Next": ANOTHER_RUN}],
        Default="?"))
    scope.add(ANOTHER_RUN, asl.state(
        "Fail", Error="stepkit.AnotherRunInProgress",
        Cause="Another execution of this pipeline is running; start this one when it has ended "
              "(`stepkit runs` lists them)."))

    def link(target: str | None) -> None:
        scope.states[ONE_RUN_AT_A_TIME]["Default"] = target
    return START, link


def wire(stages: list[StageStates], shape: Node, state_machine_arn: str,
         failure: tuple[dict[str, asl.State], str] | None) -> tuple[str, Wired]:
    """(StartAt, the states): start states, then the stages as `shape` says. `failure`: the
    on_failure states and their entry, which every top-level Task, Map and Parallel catches into."""
    wired = Wired()
    top = _Scope(wired)
    start, to_stages = _start_states(top, state_machine_arn)
    entry, links = _node(top, shape, stages)
    to_stages(entry)
    for link in links:
        link(None)
    if failure is not None:
        states, on_error = failure
        for name, state in top.states.items():
            if state["Type"] in ("Task", "Map", "Parallel"):
                state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": on_error}]
        for name, state in states.items():
            top.add(name, state)
    wired.states = top.states
    return start, wired
