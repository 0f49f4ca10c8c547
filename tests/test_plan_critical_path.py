"""The critical path of hand-built state machines: sequences, Parallel, Map waves, Choice, loops.

Each machine is valid ASL (statelint checks it). Durations: a Task lasts its TimeoutSeconds
(this test's convention), a Wait its Seconds; every state costs $1 in "usd" and one "tasks"
count, so counts show how often each state runs.
"""
from __future__ import annotations

import pytest
from statelint.linter import Linter

from stepkit.plan import critical_path as cp

LAMBDA = "arn:aws:states:::lambda:invoke"
ECS = "arn:aws:states:::ecs:runTask.sync"


def task(seconds: float, nxt: str | None = None, resource: str = LAMBDA) -> dict:
    s = {"Type": "Task", "Resource": resource, "TimeoutSeconds": int(seconds),
         "Parameters": {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f"}}
    return {**s, "Next": nxt} if nxt else {**s, "End": True}


def wait(seconds: int, nxt: str | None = None) -> dict:
    return {"Type": "Wait", "Seconds": seconds, **({"Next": nxt} if nxt else {"End": True})}


def machine(start: str, **states: dict) -> dict:
    return {"StartAt": start, "States": states}


def parallel(*branches: dict, nxt: str | None = None) -> dict:
    return {"Type": "Parallel", "Branches": list(branches), **({"Next": nxt} if nxt else {"End": True})}


def map_state(child: dict, concurrency: int, distributed: bool = False, nxt: str | None = None) -> dict:
    config = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"} if distributed else {"Mode": "INLINE"}
    return {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": concurrency,
            "ItemProcessor": {"ProcessorConfig": config, **child}, **({"Next": nxt} if nxt else {"End": True})}


def hooks(items: dict[str, int] | None = None, vcpu: float = 0) -> cp.Hooks:
    def leaf(name, state, scope):
        secs = state.get("TimeoutSeconds", 0) if state["Type"] == "Task" else state.get("Seconds", 0)
        out = cp.Leaf(seconds=float(secs), vcpu=vcpu if state["Type"] == "Task" else 0,
                      tasks=1 if state["Type"] == "Task" else 0)
        out.usd["usd"] = 1.0
        out.counts[name] += 1
        return out

    return cp.Hooks(leaf, lambda name, state: (items or {}).get(name, 1))


SEQ = machine("A", A=task(10, "B"), B=task(20, "C"), C=wait(5))
PAR = machine("P", P=parallel(machine("X", X=task(10, "Y"), Y=task(5)), machine("Z", Z=task(30))), )
PAR["States"]["P"]["Next"] = "W"
PAR["States"]["P"].pop("End")
PAR["States"]["W"] = wait(1)
INLINE = machine("M", M=map_state(machine("T", T=task(7)), 3))
INLINE_CAPPED = machine("M", M=map_state(machine("T", T=task(7)), 100))
DISTRIBUTED = machine("M", M=map_state(machine("T", T=task(60, resource=ECS)), 100, distributed=True))
UNLIMITED = machine("M", M=map_state(machine("T", T=task(60, resource=ECS)), 0, distributed=True))
CHOICE = machine("C", C={"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": True, "Next": "Short"}],
                         "Default": "Long"},
                 Short=task(5, "End_"), Long=task(50, "End_"), End_={"Type": "Succeed"})
LOOP = machine("Poll", Poll=task(10, "Done?"),
               **{"Done?": {"Type": "Choice", "Choices": [{"Variable": "$.done", "BooleanEquals": False, "Next": "Poll"}],
                            "Default": "Ok"}}, Ok={"Type": "Succeed"})
MAP_IN_PARALLEL = machine("P", P=parallel(machine("M", M=map_state(machine("T", T=task(60, resource=ECS)), 10,
                                                                     distributed=True)),
                                          machine("N", N=map_state(machine("U", U=task(100, resource=ECS)), 5,
                                                                   distributed=True))))
PARALLEL_IN_MAP = machine("M", M=map_state(machine("P", P=parallel(machine("A", A=task(3)), machine("B", B=task(8)))), 2))

CASES = [
    # id, machine, Map items, seconds, critical path, how often state X ran
    ("sequence", SEQ, {}, 35, ["A", "B", "C"], {"A": 1, "B": 1, "C": 1}),
    ("parallel: longest branch, then on", PAR, {}, 31, ["P", "P/Z", "W"], {"X": 1, "Y": 1, "Z": 1, "W": 1}),
    ("inline map: 10 items, 3 at once = 4 waves", INLINE, {"M": 10}, 28, ["M"], {"T": 10}),
    ("inline map: MaxConcurrency 100 runs 40 at once", INLINE_CAPPED, {"M": 100}, 21, ["M"], {"T": 100}),
    ("distributed map: 898 items, 100 at once = 9 waves", DISTRIBUTED, {"M": 898}, 540, ["M"], {"T": 898}),
    ("distributed map: MaxConcurrency 0 = all at once", UNLIMITED, {"M": 898}, 60, ["M"], {"T": 898}),
    ("choice: the longer way on", CHOICE, {}, 50, ["C", "Long", "End_"], {"Long": 1, "Short": 0}),
    ("a loop counts once", LOOP, {}, 10, ["Poll", "Done?", "Ok"], {"Poll": 1}),
    ("maps side by side: the slower", MAP_IN_PARALLEL, {"M": 30, "N": 10}, 200, ["P", "P/N"], {"T": 30, "U": 10}),
    ("parallel inside a map: 5 items, 2 at once x 8 s", PARALLEL_IN_MAP, {"M": 5}, 24, ["M"], {"A": 5, "B": 5}),
]


@pytest.mark.parametrize("name,definition,items,seconds,path,runs", CASES, ids=[c[0] for c in CASES])
def test_critical_path(name, definition, items, seconds, path, runs):
    assert [e for e in Linter.validate(definition) if "Label" not in e] == []
    total = cp.walk(definition, hooks(items))
    assert total.seconds == pytest.approx(seconds)
    assert total.path == path
    for state, n in runs.items():
        assert total.counts[state] == n, state


def test_costs_add_over_every_state_run():
    total = cp.walk(MAP_IN_PARALLEL, hooks({"M": 30, "N": 10}))
    # P, M, N once each, T 30 times, U 10 times: $1 each
    assert total.usd["usd"] == pytest.approx(3 + 30 + 10)


@pytest.mark.parametrize("definition,items,vcpu,peak_vcpu,peak_tasks", [
    (DISTRIBUTED, {"M": 898}, 4, 400, 100),
    (DISTRIBUTED, {"M": 7}, 4, 28, 7),  # fewer items than MaxConcurrency
    (MAP_IN_PARALLEL, {"M": 30, "N": 10}, 2, 2 * (10 + 5), 15),  # branches at once: footprints add
    (SEQ, {}, 16, 16, 1),  # one at a time: the largest
])
def test_peak_footprint(definition, items, vcpu, peak_vcpu, peak_tasks):
    total = cp.walk(definition, hooks(items, vcpu))
    assert (total.peak_vcpu, total.peak_tasks) == (peak_vcpu, peak_tasks)


def test_spans_place_states_in_time():
    total = cp.walk(PAR, hooks())
    spans = {s.name: (s.start, s.end) for s in total.spans}
    assert spans == {"P": (0, 30), "X": (0, 10), "Y": (10, 15), "Z": (0, 30), "W": (30, 31)}


def test_notes_say_what_was_assumed():
    assert any("inline Map runs at most 40" in n for n in cp.walk(INLINE_CAPPED, hooks({"M": 100})).notes)
    assert any("loops back" in n for n in cp.walk(LOOP, hooks()).notes)
